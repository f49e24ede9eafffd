"""The loader's snapshot of a clean tokenizer and model, and :func:`recheck` against it.

:class:`~cleanroom.loader.CleanModelLoader` stores :func:`snapshot` on the tokenizer and the model;
:func:`recheck`, called after every step that may touch them (trainer init, PEFT wrapping, merge,
save/reload), raises when anything that decides what the model is fed or stops on has changed.
"""

from __future__ import annotations

import json
from typing import Any

from cleanroom.control_tokens import added_tokens, refuse_chat_template, required_bos_id
from cleanroom.errors import ContaminationError

SNAPSHOT_ATTR = "_cleanroom_snapshot"
# One plain encode of this text is part of the snapshot: any switch that makes tokenizer(text) add or split
# differently (add_eos_token re-enabled, a post-processor restored, split_special_tokens off) changes its IDs.
SNAPSHOT_PROBE_TEXT = "Hello world <|im_start|>user\n"
# config/generation_config keys left out of the whole-config comparison, because they change without changing
# what the model is fed or stops on: the writer's version and path, the cache flag trainers turn off for
# gradient checkpointing, the storage dtype a merge or mixed-precision cast changes, the attention kernel and
# the runtime output switches. Every other key (bos/eos/pad, forced_eos_token_id, begin_suppress_tokens,
# suppress_tokens, decoding defaults, the architecture) must stay as loaded.
VOLATILE_CONFIG_KEYS = frozenset({
    "transformers_version", "_name_or_path", "_commit_hash", "use_cache", "dtype", "torch_dtype",
    "_attn_implementation", "_attn_implementation_autoset", "_attn_implementation_internal",
    "output_attentions", "output_hidden_states", "return_dict", "_from_model_config",
})


def _config_dict(config: Any) -> dict[str, Any] | None:
    """``config.to_dict()`` as plain JSON values, without :data:`VOLATILE_CONFIG_KEYS`."""
    if config is None:
        return None
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))
    return json.loads(json.dumps({k: v for k, v in raw.items() if k not in VOLATILE_CONFIG_KEYS}, default=str))


def snapshot(model: Any, tokenizer: Any) -> dict[str, Any]:
    """The state :func:`recheck` compares.

    Tokenizer: chat template (attribute and init_kwargs), whether ``apply_chat_template`` is still the
    refusing function, special tokens, eos/pad/bos, the add_bos/add_eos flags, the BOS-required mark and the
    IDs of one plain ``tokenizer(SNAPSHOT_PROBE_TEXT)``. Model: the eos/pad/bos fields (one key each, which
    ``training.special_ids`` restores) and the whole ``config`` / ``generation_config`` as dicts without
    :data:`VOLATILE_CONFIG_KEYS` (``forced_eos_token_id``, ``begin_suppress_tokens``, ... included).
    """
    tok = {
        "chat_template": getattr(tokenizer, "chat_template", None),
        "init_chat_template": (getattr(tokenizer, "init_kwargs", None) or {}).get("chat_template"),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "added_tokens": sorted((i, c, s) for i, (c, s) in added_tokens(tokenizer).items()),
        "len": len(tokenizer),
        "split_special_tokens": bool(getattr(tokenizer, "split_special_tokens", False)),
        "apply_chat_template_refused": vars(tokenizer).get("apply_chat_template") is refuse_chat_template,
        "add_bos_token": getattr(tokenizer, "add_bos_token", None),
        "add_eos_token": getattr(tokenizer, "add_eos_token", None),
        "bos_required": required_bos_id(tokenizer),
        "plain_encode": list(tokenizer(SNAPSHOT_PROBE_TEXT)["input_ids"]),
    }
    if model is None:
        return {"tokenizer": tok}
    cfg, gen = model.config, getattr(model, "generation_config", None)
    mod = {
        "config_eos_token_id": getattr(cfg, "eos_token_id", None),
        "config_pad_token_id": getattr(cfg, "pad_token_id", None),
        "config_bos_token_id": getattr(cfg, "bos_token_id", None),
        "generation_eos_token_id": getattr(gen, "eos_token_id", None),
        "generation_pad_token_id": getattr(gen, "pad_token_id", None),
        "generation_bos_token_id": getattr(gen, "bos_token_id", None),
        # "whole_" keys: not "config_"/"generation_" fields, which training.special_ids restores one by one
        "whole_config": _config_dict(cfg),
        "whole_generation_config": _config_dict(gen),
    }
    return {"tokenizer": tok, "model": mod}


def _diff(prefix: str, before: Any, after: Any) -> list[str]:
    """``prefix.key: before -> after`` for each differing key, descending into dicts (sorted keys)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            out += _diff(f"{prefix}.{key}", before.get(key), after.get(key))
        return out
    return [] if before == after else [f"{prefix}: {before!r} -> {after!r}"]


def recheck(model: Any, tokenizer: Any) -> None:
    """Raise :class:`ContaminationError` if anything changed since the loader's snapshot.

    Call it after every step that may touch the tokenizer or model (trainer init, PEFT wrapping,
    merge, save/reload): TRL and transformers rewrite eos/pad and may restore the chat template.
    """
    expected = getattr(tokenizer, SNAPSHOT_ATTR, None)
    if expected is None:
        raise ContaminationError(
            "recheck: this tokenizer was not produced by CleanModelLoader (no snapshot); load it with "
            "CleanModelLoader(...).load() or .load_tokenizer()"
        )
    now = snapshot(model, tokenizer)
    changes = _diff("tokenizer", expected["tokenizer"], now["tokenizer"])
    if model is not None:
        model_expected = getattr(model, SNAPSHOT_ATTR, None)
        if model_expected is None:
            raise ContaminationError("recheck: this model was not produced by CleanModelLoader (no snapshot)")
        changes += _diff("model", model_expected, now["model"])
    if changes:
        shown = "; ".join(c if len(c) < 200 else c[:200] + "..." for c in changes[:8])
        if len(changes) > 8:
            shown += f"; ... {len(changes) - 8} more"
        raise ContaminationError(
            f"recheck: tokenizer/model changed since the clean load: {shown}; restore the clean state "
            "(pass the loader's tokenizer as processing_class, keep eos/pad = base EOS, no chat template)"
        )

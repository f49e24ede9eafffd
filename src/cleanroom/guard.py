"""The contamination guard: no chat-control token, template or stray EOS reaches a base-model path.

Everything is decided by token **ID**, never by string: a tokenizer may render two different IDs to
the same text, and the text ``<|im_start|>`` typed by a user must stay ordinary subwords. The forbidden
set is every added token flagged special plus every chat-control token (for Qwen2.5, 151644-151664,
including the non-special ``<tool_call>``, FIM and repo/file tokens) — all except the base EOS, which is
allowed only as the single final token of a completion.

:func:`scan_ids` is vectorised: the forbidden set becomes a boolean lookup table ``bad[id]`` and a
batch of ``N`` tokens costs one gather ``bad[flat]`` (O(N), no Python loop over tokens). The
benchmark in ``benchmarks/bench_scan_ids.py`` prints the throughput.

:func:`recheck` compares the tokenizer and model against the snapshot :class:`~cleanroom.loader.CleanModelLoader`
stored on them, so a trainer that re-enables the chat template or rewrites eos/pad is caught after the fact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from cleanroom.errors import ContaminationError, InputError

# Non-special added tokens that are still chat/tool/FIM control tokens: "<|...|>" or "<name>"/"</name>"
# with an identifier inside (Qwen2.5's <tool_call>, StarCoder-style <filename>, <reponame>).
_CONTROL_TEXT = re.compile(r"^(<\|[^\s<>]{1,64}\|>|</?[A-Za-z_][A-Za-z0-9_\-]{0,63}>)$")
# Candidate base EOS strings in order of preference (Qwen/GPT-2/SmolLM2, Llama-3 base, SentencePiece).
_BASE_EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>")
SNAPSHOT_ATTR = "_cleanroom_snapshot"
# The BOS ID of a tokenizer that added BOS as shipped (Llama-style); None for tokenizers that add none (Qwen).
BOS_REQUIRED_ATTR = "_cleanroom_bos_required"
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


def refuse_chat_template(*args: Any, **kwargs: Any) -> Any:
    """Installed as ``tokenizer.apply_chat_template``: base-model paths never use a chat template."""
    raise ContaminationError(
        "apply_chat_template called on a clean base-model tokenizer; base models are prompted in "
        "completion style (cleanroom.ifeval.few_shot_prompt), never through a chat template"
    )


def required_bos_id(tokenizer: Any) -> int | None:
    """The BOS ID :func:`encode` puts at position 0, for a tokenizer the loader marked BOS-required; else None."""
    bos = getattr(tokenizer, BOS_REQUIRED_ATTR, None)
    return None if bos is None else int(bos)


def _added_tokens(tokenizer: Any) -> dict[int, tuple[str, bool]]:
    """``{id: (content, special)}`` of every added token the tokenizer knows."""
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return {int(i): (str(getattr(t, "content", t)), bool(getattr(t, "special", True))) for i, t in decoder.items()}


def base_eos_id(tokenizer: Any) -> int:
    """The base model's end-of-text ID (``<|endoftext|>`` = 151643 for Qwen2.5), never an end-of-turn ID.

    The loader stores it on the tokenizer; otherwise the first of ``<|endoftext|>``, ``<|end_of_text|>``,
    ``</s>`` present in the vocabulary wins, then the tokenizer's own ``eos_token_id``.
    """
    stored = getattr(tokenizer, "_cleanroom_base_eos", None)
    if stored is not None:
        return int(stored)
    vocab = tokenizer.get_vocab()
    for text in _BASE_EOS_CANDIDATES:
        if text in vocab:
            return int(vocab[text])
    if tokenizer.eos_token_id is None:
        raise InputError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')}: no end-of-text token found "
            "(none of <|endoftext|>, <|end_of_text|>, </s>, and no eos_token); pass a base-model tokenizer"
        )
    return int(tokenizer.eos_token_id)


def forbidden_ids(tokenizer: Any) -> frozenset[int]:
    """Every special added token and every chat-control token, by ID; the base EOS is excluded."""
    stored = getattr(tokenizer, "_cleanroom_forbidden", None)
    if stored is not None:
        return stored
    eos = base_eos_id(tokenizer)
    ids = {i for i, (content, special) in _added_tokens(tokenizer).items() if special or _CONTROL_TEXT.match(content)}
    ids.discard(eos)
    return frozenset(ids)


def _token_text(tokenizer: Any, token_id: int) -> str:
    if tokenizer is None:
        return ""
    try:
        return f" {tokenizer.convert_ids_to_tokens(int(token_id))!r}"
    except Exception:  # an ID beyond the vocabulary: the ID itself is the evidence
        return ""


def _flatten(sequences: Any, mask: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(flat ids of the valid positions, length of each record)`` for ragged or padded input."""
    if hasattr(sequences, "detach"):  # torch.Tensor without importing torch
        sequences = sequences.detach().cpu().numpy()
    if mask is not None and hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    if isinstance(sequences, np.ndarray):
        if sequences.ndim == 1:
            sequences = sequences[None, :]
        if sequences.ndim != 2:
            raise InputError(f"scan_ids: expected a 2-D batch of token IDs, got shape {sequences.shape}")
        arr = sequences.astype(np.int64, copy=False)
        if mask is not None:
            m = np.asarray(mask).astype(bool)
            if m.shape != arr.shape:
                raise InputError(f"scan_ids: mask shape {m.shape} differs from the batch shape {arr.shape}")
            return arr[m], m.sum(axis=1)
        if lengths is not None:
            lens = np.asarray(lengths, dtype=np.int64)
            m = np.arange(arr.shape[1])[None, :] < lens[:, None]
            return arr[m], lens
        return arr.reshape(-1), np.full(arr.shape[0], arr.shape[1], dtype=np.int64)
    seqs = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    if mask is not None or lengths is not None:
        raise InputError("scan_ids: mask/lengths only apply to a padded 2-D batch, not to a list of sequences")
    flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
    return flat, lens


def scan_ids(
    sequences: Any,
    forbidden: frozenset[int] | Sequence[int],
    *,
    final_eos_id: int | None = None,
    where: str = "batch",
    mask: Any = None,
    lengths: Any = None,
    tokenizer: Any = None,
    record_offset: int = 0,
    bos_id: int | None = None,
) -> None:
    """Raise :class:`ContaminationError` at the first forbidden token in any sequence.

    ``sequences`` is a list of ID lists, or a 2-D numpy array / torch tensor whose padding is excluded
    by ``mask`` (an attention mask, left or right padding) or ``lengths``. With ``final_eos_id`` set,
    each sequence must end with exactly one EOS and contain no other (EOS doubled, missing or cut by
    truncation are all errors); without it, the base EOS is not checked (it is not in ``forbidden``).
    Positions are counted within the unpadded sequence; records from ``record_offset``.

    ``bos_id`` (by default :func:`required_bos_id` of ``tokenizer``: set only for a Llama-style model that
    needs BOS) is allowed exactly once, at position 0 of a sequence; anywhere else, including a doubled
    BOS at position 1, it is a finding like any forbidden token.
    """
    if bos_id is None and tokenizer is not None:
        bos_id = required_bos_id(tokenizer)
    flat, lens = _flatten(sequences, mask, lengths)
    if flat.size and int(flat.min()) < 0:
        raise InputError(f"{where}: negative token ID {int(flat.min())} in input_ids (labels are not scanned)")
    starts = np.concatenate(([0], np.cumsum(lens)[:-1])) if lens.size else np.zeros(0, dtype=np.int64)

    def fail(index: int, why: str) -> None:
        rec = int(np.searchsorted(starts, index, side="right") - 1)
        pos = index - int(starts[rec])
        tid = int(flat[index])
        raise ContaminationError(
            f"{where}: record {rec + record_offset}, token {pos} is ID {tid}{_token_text(tokenizer, tid)}: {why}"
        )

    forb = np.fromiter((int(i) for i in forbidden), dtype=np.int64)
    if bos_id is not None:
        forb = np.append(forb, int(bos_id))
    if flat.size and forb.size:
        size = int(max(flat.max(), forb.max())) + 1
        table = np.zeros(size, dtype=bool)
        table[forb] = True
        hits = table[flat]
        if bos_id is not None:
            first = starts[lens > 0]
            hits[first[flat[first] == int(bos_id)]] = False  # the one BOS a BOS-required model starts with
        if hits.any():
            index = int(np.argmax(hits))
            fail(
                index,
                f"BOS {bos_id} is allowed once, at position 0 only (doubled or injected BOS)"
                if bos_id is not None and int(flat[index]) == int(bos_id)
                else "a chat-control/special token; base-model data must not contain it — regenerate with the "
                "clean loader's tokenizer (split_special_tokens=True, no chat template)",
            )
    if final_eos_id is None:
        return
    ends = starts + lens - 1
    eos_at = np.flatnonzero(flat == int(final_eos_id))
    stray = eos_at[~np.isin(eos_at, ends[lens > 0])]
    if stray.size:
        fail(int(stray[0]), "EOS before the end of the sequence (doubled EOS); only one final EOS is allowed")
    if (lens == 0).any():
        rec = int(np.argmax(lens == 0))
        raise ContaminationError(f"{where}: record {rec + record_offset} is empty; it must end with EOS {final_eos_id}")
    last = flat[ends]
    missing = np.flatnonzero(last != int(final_eos_id))
    if missing.size:
        rec = int(missing[0])
        tid = int(last[rec])
        raise ContaminationError(
            f"{where}: record {rec + record_offset}, last token {int(lens[rec]) - 1} is ID {tid}"
            f"{_token_text(tokenizer, tid)}, not EOS {final_eos_id}: EOS missing or truncated by max length"
        )


def check_loss_mask(
    supervised: Any,
    prompt_lengths: Any,
    lengths: Any,
    *,
    where: str = "batch",
    labels: Any = None,
    input_ids: Any = None,
) -> None:
    """Raise :class:`ContaminationError` unless the loss covers exactly each completion and its EOS.

    ``supervised`` is a 2-D bool tensor, True where a token carries loss (SFT: ``labels != -100``; DPO:
    ``completion_mask``, the positions summed into the chosen/rejected log-probabilities). Row ``r`` has
    ``P_r = prompt_lengths[r]`` prompt tokens (known independently of the mask: the prompt's own encoding)
    and ``L_r = lengths[r]`` real tokens, right-padded. Then, for every position ``t``::

        supervised[r, t]  ==  (P_r <= t < L_r),      and  P_r < L_r  (at least one supervised token)

    so a prompt token with loss (whole-sequence loss), a completion token or the EOS without loss, and a
    supervised pad are all findings. With ``labels`` and ``input_ids`` (SFT), each supervised label must
    also be its own input ID (transformers shifts internally). One reduction and one host synchronisation
    per batch; the details of a finding are computed only when there is one.
    """
    # heavy optional: torch
    import torch  # heavy; the guard's other scans need only numpy

    sup = torch.as_tensor(supervised).bool()
    if sup.ndim != 2:
        raise InputError(f"{where}: expected a 2-D loss mask, got shape {tuple(sup.shape)}")
    p = torch.as_tensor(prompt_lengths, device=sup.device).reshape(-1, 1)
    n = torch.as_tensor(lengths, device=sup.device).reshape(-1, 1)
    if p.shape[0] != sup.shape[0] or n.shape[0] != sup.shape[0]:
        raise InputError(f"{where}: {p.shape[0]} prompt lengths and {n.shape[0]} lengths for {sup.shape[0]} rows")
    pos = torch.arange(sup.shape[1], device=sup.device)[None, :]
    bad = sup != ((pos >= p) & (pos < n))
    if labels is not None:
        bad |= sup & (torch.as_tensor(labels) != torch.as_tensor(input_ids))
    bad_row = bad.any(dim=1) | (p >= n).squeeze(1)
    if not bool(bad_row.any()):  # the one synchronisation
        return
    row = int(bad_row.nonzero()[0])
    prompt, length = int(p[row]), int(n[row])
    if prompt >= length:
        raise ContaminationError(
            f"{where} row {row}: prompt length {prompt} leaves no completion token in {length} real tokens; "
            "nothing would be supervised — render examples with guard.render_example"
        )
    t = int(bad[row].nonzero()[0])
    got = f" (label {int(labels[row, t])})" if labels is not None else ""
    if t < prompt and sup[row, t]:
        why = (f"prompt token {t} of {prompt} carries loss{got}; the loss must cover the completion and its EOS "
               "only, never the prompt (whole-sequence loss) — keep guard.render_example's labels / TRL's completion_mask")
    elif t >= length:
        why = f"padding position {t} (real length {length}) carries loss{got}; pads must be excluded"
    elif not sup[row, t]:
        why = (f"completion token {t} (prompt {prompt}, length {length}) carries no loss; the whole completion "
               "and its EOS must be supervised")
    else:
        why = (f"completion token {t} has label {int(labels[row, t])} but input ID {int(input_ids[row, t])}; "
               "labels must be the input IDs themselves")
    raise ContaminationError(f"{where} row {row}: {why}")


def encode(tokenizer: Any, text: str, *, add_bos: bool = True) -> list[int]:
    """Encode text as ordinary subwords; literal control strings never become control IDs.

    No EOS is ever added. BOS is explicit: for a tokenizer the loader marked BOS-required (it added BOS
    as shipped, Llama-style) its ID is put once at position 0 — ``add_bos=False`` gives the bare subwords,
    for fragments spliced into a longer sequence; other tokenizers (Qwen) get no BOS either way.
    """
    ids = list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])
    bos = required_bos_id(tokenizer) if add_bos else None
    return ids if bos is None else [bos, *ids]


def _boundary_message(tokenizer: Any, prompt: str, p_ids: list[int], full: list[int]) -> str:
    """Why the prompt's IDs are not a prefix of the whole example's, with the two token strings, and the fix.

    BPE pre-tokenisation joins characters across the join (``'.' + 'Soft'`` is one pre-token ``'.Soft'``
    under Qwen's pattern, as is ``' ' + 'there'``), so the last prompt token and the first completion
    token become different tokens: the supervised answer would start in the middle of a token.
    """
    i = next((k for k, (a, b) in enumerate(zip(p_ids, full, strict=False)) if a != b), min(len(p_ids), len(full)))
    alone = tokenizer.decode(p_ids[i:])
    joined = tokenizer.decode(full[i : i + max(1, len(p_ids) - i) + 1])
    if prompt[-1:].isspace() and prompt[-1:] not in "\r\n":
        fix = "move the prompt's trailing whitespace to the start of the completion"
    else:
        fix = "put a separator between them: end the prompt with '\\n' or start the completion with ' '"
    return (f"the prompt's tokens are not a prefix of prompt+completion: the prompt ends in {alone!r} (token "
            f"{i}) but prompt+completion tokenises the boundary as {joined!r}, so the tokens at the prompt/completion "
            f"boundary merge and the answer would start mid-token; {fix}")


def render_example(
    tokenizer: Any, prompt: str, completion: str, *, max_length: int, record: Any = "?"
) -> dict[str, list[int]]:
    """Render one SFT example as ``prompt ids + completion ids + [EOS]`` with labels -100 on the prompt.

    Checks, each a :class:`ContaminationError` naming the record: the prompt's IDs are a prefix of
    the IDs of ``prompt + completion`` (otherwise the supervised boundary would split a token); the
    completion has at least one token; the whole example fits ``max_length`` (so the EOS is never cut
    off); exactly one EOS, at the end; no forbidden ID anywhere.
    """
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise InputError(f"record {record}: prompt and completion must be strings")
    eos = base_eos_id(tokenizer)
    p_ids = encode(tokenizer, prompt)
    full = encode(tokenizer, prompt + completion)
    if full[: len(p_ids)] != p_ids:
        raise ContaminationError(f"record {record}: {_boundary_message(tokenizer, prompt, p_ids, full)}")
    c_ids = full[len(p_ids) :]
    if not c_ids:
        raise ContaminationError(f"record {record}: empty completion, no supervised token besides EOS; drop it")
    input_ids = full + [eos]
    if len(input_ids) > max_length:
        raise ContaminationError(
            f"record {record}: {len(input_ids)} tokens with EOS exceed max_length={max_length}; truncation would "
            "cut the EOS — raise max_length or drop the example"
        )
    scan_ids([input_ids], forbidden_ids(tokenizer), final_eos_id=eos, where=f"record {record}", tokenizer=tokenizer)
    return {"input_ids": input_ids, "labels": [-100] * len(p_ids) + c_ids + [eos]}


def check_pair(
    tokenizer: Any, prompt: str, chosen: str, rejected: str, *, max_length: int, record: Any = "?"
) -> None:
    """Apply :func:`render_example`'s rules to both sides of a DPO pair; identical sides are an error."""
    if chosen == rejected:
        raise InputError(f"record {record}: chosen and rejected are identical; a preference pair needs two answers")
    render_example(tokenizer, prompt, chosen, max_length=max_length, record=f"{record} chosen")
    render_example(tokenizer, prompt, rejected, max_length=max_length, record=f"{record} rejected")


def literal_control_strings(tokenizer: Any, text: str) -> list[tuple[int, str]]:
    """``(character offset, token string)`` of every forbidden token's literal text inside *text*.

    Such text in base-model data means a chat template was applied upstream (``<|im_start|>assistant``);
    text that merely resembles one (``<b>im_start</b>``, ``<|im a cat|>``) matches no token and passes.
    """
    added = _added_tokens(tokenizer)
    names = {added[i][0] for i in forbidden_ids(tokenizer) if i in added}
    names.add(tokenizer.convert_ids_to_tokens(base_eos_id(tokenizer)))
    if not names:
        return []
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    return [(m.start(), m.group(0)) for m in pattern.finditer(text)]


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
        "added_tokens": sorted((i, c, s) for i, (c, s) in _added_tokens(tokenizer).items()),
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


__all__ = [
    "base_eos_id",
    "check_loss_mask",
    "check_pair",
    "encode",
    "forbidden_ids",
    "literal_control_strings",
    "recheck",
    "refuse_chat_template",
    "render_example",
    "required_bos_id",
    "scan_ids",
    "snapshot",
]

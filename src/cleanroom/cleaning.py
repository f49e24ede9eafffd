"""What "clean" means: the steps that disarm a base model's tokenizer and configs in place.

:class:`~cleanroom.loader.CleanModelLoader` runs them on everything it loads before it returns it, and the
Unsloth backend on what Unsloth loads: cleaning loads nothing, so a caller gets a tokenizer or a model only
from a loader, already clean. The names are imported from :mod:`cleanroom.loader`, which re-exports them.

* the chat template is removed from the tokenizer attribute and its ``init_kwargs`` (so a save writes no
  ``chat_template.jinja``), and ``apply_chat_template`` is replaced on the instance by a function that
  raises :class:`ContaminationError`;
* literal control strings encode as ordinary subwords: ``split_special_tokens=True``, and the non-special
  control tokens (Qwen2.5's ``<tool_call>``, FIM, repo/file) are re-registered as special in the backend
  so that flag covers them too — verified by ID by the sentinels;
* no BOS/EOS is added silently: ``add_bos_token``/``add_eos_token`` are set off unconditionally (a
  tokenizer.json post-processor may add BOS while the flag reads False; the setter rebuilds it). A tokenizer
  that added BOS as shipped (Llama-style) is marked BOS-required (``bos_required`` in provenance) and
  :func:`guard.encode` puts its BOS explicitly, once, at position 0; Qwen adds none;
* EOS and pad are the base EOS; config and generation_config eos/pad too (never ``<|im_end|>``).
"""

from __future__ import annotations

from typing import Any

from cleanroom import guard
from cleanroom.errors import ContaminationError

refuse_chat_template = guard.refuse_chat_template  # installed as tokenizer.apply_chat_template


def clean_tokenizer(tokenizer: Any) -> list[str]:
    """Disarm *tokenizer* in place (see the module docstring); return the list of changes made."""
    from tokenizers import AddedToken  # heavy optional: tokenizers

    changes = []
    eos = guard.base_eos_id(tokenizer)
    if getattr(tokenizer, "chat_template", None) is not None:
        changes.append("removed chat_template")
    tokenizer.chat_template = None
    if isinstance(getattr(tokenizer, "init_kwargs", None), dict) and tokenizer.init_kwargs.pop("chat_template", None):
        changes.append("removed chat_template from init_kwargs")
    tokenizer.apply_chat_template = refuse_chat_template
    backend = getattr(tokenizer, "backend_tokenizer", None)
    control = [(i, c) for i, (c, s) in guard.added_tokens(tokenizer).items() if not s and guard.CONTROL_TEXT.match(c)]
    if control and backend is not None:
        backend.add_special_tokens([AddedToken(c, special=True, normalized=False) for _, c in control])
        changes.append(f"re-registered {len(control)} non-special control tokens as special (split by ID)")
    tokenizer.split_special_tokens = True
    shipped = list(tokenizer("a")["input_ids"])
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    bos_required = bos is not None and shipped[:1] == [bos] and plain[:1] != [bos]
    for attr in ("add_bos_token", "add_eos_token"):
        # unconditionally: the flag may read False while the post-processor still adds the token
        if hasattr(tokenizer, attr) or bos_required:
            setattr(tokenizer, attr, False)
    if shipped != plain:
        changes.append(f"special tokens added to plain text turned off ({shipped} -> {plain} for 'a')")
    if bos_required:
        changes.append(f"BOS {bos} required by the model: added explicitly at position 0 by guard.encode")
    eos_text = tokenizer.convert_ids_to_tokens(eos)
    if tokenizer.eos_token_id != eos:
        changes.append(f"eos {tokenizer.eos_token!r} -> {eos_text!r}")
        tokenizer.eos_token = eos_text
    if tokenizer.pad_token_id != eos:
        changes.append(f"pad {tokenizer.pad_token!r} -> {eos_text!r}")
        tokenizer.pad_token = eos_text
    if tokenizer("a")["input_ids"] != tokenizer("a", add_special_tokens=False)["input_ids"]:
        raise ContaminationError(
            f"tokenizer {tokenizer.name_or_path}: still adds tokens to plain text after cleaning; "
            "its post-processor cannot be switched off — report this tokenizer"
        )
    tokenizer._cleanroom_base_eos = eos
    setattr(tokenizer, guard.BOS_REQUIRED_ATTR, bos if bos_required else None)
    tokenizer._cleanroom_forbidden = None
    tokenizer._cleanroom_forbidden = guard.forbidden_ids(tokenizer)
    return changes


def clean_model(model: Any, eos: int) -> list[str]:
    """Set config and generation_config eos/pad to the base EOS; return the changes."""
    changes = []
    for owner_name in ("config", "generation_config"):
        owner = getattr(model, owner_name, None)
        if owner is None:
            continue
        for attr in ("eos_token_id", "pad_token_id"):
            if getattr(owner, attr, None) != eos:
                changes.append(f"{owner_name}.{attr}: {getattr(owner, attr, None)!r} -> {eos}")
                setattr(owner, attr, eos)
    return changes


__all__ = ["clean_model", "clean_tokenizer", "refuse_chat_template"]

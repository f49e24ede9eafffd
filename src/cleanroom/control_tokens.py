"""The forbidden-ID sets: which token IDs a base-model path must never contain, decided by ID.

Every added token flagged special plus every chat-control token (``<|...|>`` or ``<name>`` text,
special or not), minus the base EOS, which is allowed only as a completion's single final token; the
BOS a Llama-style tokenizer needs; and the refusal installed as ``apply_chat_template``. The scans that
use these sets are in :mod:`cleanroom.guard`.
"""

from __future__ import annotations

import numbers
import re
from typing import Any

from cleanroom.errors import ContaminationError, InputError

# Non-special added tokens that are still chat/tool/FIM control tokens: "<|...|>" or "<name>"/"</name>"
# with an identifier inside (Qwen2.5's <tool_call>, StarCoder-style <filename>, <reponame>).
CONTROL_TEXT = re.compile(r"^(<\|[^\s<>]{1,64}\|>|</?[A-Za-z_][A-Za-z0-9_\-]{0,63}>)$")
# Candidate base EOS strings in order of preference (Qwen/GPT-2/SmolLM2, Llama-3 base, SentencePiece).
BASE_EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>")
# The BOS ID of a tokenizer that added BOS as shipped (Llama-style); None for tokenizers that add none (Qwen).
BOS_REQUIRED_ATTR = "_cleanroom_bos_required"


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


def added_tokens(tokenizer: Any) -> dict[int, tuple[str, bool]]:
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
    for text in BASE_EOS_CANDIDATES:
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
    ids = {i for i, (content, special) in added_tokens(tokenizer).items() if special or CONTROL_TEXT.match(content)}
    ids.discard(eos)
    return frozenset(ids)


def literal_control_strings(tokenizer: Any, text: str) -> list[tuple[int, str]]:
    """``(character offset, token string)`` of every forbidden token's literal text inside *text*.

    Such text in base-model data means a chat template was applied upstream (``<|im_start|>assistant``);
    text that merely resembles one (``<b>im_start</b>``, ``<|im a cat|>``) matches no token and passes.
    """
    added = added_tokens(tokenizer)
    names = {added[i][0] for i in forbidden_ids(tokenizer) if i in added}
    names.add(tokenizer.convert_ids_to_tokens(base_eos_id(tokenizer)))
    if not names:
        return []
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    return [(m.start(), m.group(0)) for m in pattern.finditer(text)]


def ids_of(value: Any) -> set[int]:
    """The token IDs of a config field that holds one ID, a list of them, or None (``eos_token_id`` and kin).

    Anything else is an :class:`InputError`: a string such as ``"151643"`` would otherwise iterate into the IDs
    of its digits, and ``True`` into ID 1, so a marker would compare the wrong tokens without a word.
    """
    def one(v: Any) -> int:
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):
            return int(v)
        raise InputError(f"a token ID field holds {value!r}; expected an integer, a list of integers or null — fix "
                         "the model's config.json / generation_config.json")

    if value is None:
        return set()
    if isinstance(value, (list, tuple)):
        return {one(v) for v in value}
    return {one(value)}

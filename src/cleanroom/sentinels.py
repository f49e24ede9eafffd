"""Sentinel checks run at load: fixed texts must encode exactly as an independent reference does.

Why: a tokenizer can be "clean" in its config and still map the literal text ``<|im_start|>`` to the
control ID, add a BOS silently, or normalise text differently from the model's training. For Qwen-family
byte-level BPE the reference is tiktoken, built from the tokenizer's own ranks (``bytes_to_unicode``
inverted: each vocabulary string back to its bytes, rank = ID) with the Qwen pre-tokenisation regex
and NFC normalisation — a different implementation of the same specification. Every sentinel must also
decode back to itself and contain no forbidden ID. For other tokenizers (SmolLM2, Llama) no independent
reference is available: only the round-trip and forbidden-ID checks run, and the report says so.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cleanroom import guard

SENTINELS: tuple[str, ...] = (
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "<|im_start|>user\nWrite a poem.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<|fim_prefix|>def f():<|fim_suffix|><|fim_middle|>",
    "<|repo_name|>x<|file_sep|>y.py",
    "system\nuser\nassistant\n",
    "User: hi\nAssistant: hello\nHuman: ok",
    "<s>[INST] hi [/INST]</s>",
    "<b>im_start</b> <|im a cat|>",
    "naïve café, 日本語のテキスト, Ελληνικά, emoji 🙂👍🏽",
    "  two leading spaces",
    "trailing spaces   ",
    "\t\ttabs\tand\nnew\n\nlines\r\n",
    " ",
    "\n\n\n",
    "1234567890 3.14159 -42",
)

# Qwen2.5's pre-tokenizer pattern (the reference the sentinels compare against; fixtures build with it too)
QWEN_PAT_STR = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


@dataclass(frozen=True)
class SentinelReport:
    """Outcome of :func:`run_sentinels`; ``failures`` empty means clean."""

    reference: str
    checked: int
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "checked": self.checked, "failures": list(self.failures)}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-character table (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def is_qwen_bytelevel(tokenizer: Any) -> bool:
    """Qwen2/2.5 family: ``<|endoftext|>`` right after the 151,643 byte-level BPE ranks."""
    vocab_added = {c: i for i, (c, _) in guard.added_tokens(tokenizer).items()}
    return vocab_added.get("<|endoftext|>") == 151643 and "<|im_start|>" in vocab_added


@lru_cache(maxsize=4)
def _qwen_reference(name: str, ranks_items: tuple[tuple[bytes, int], ...]) -> Any:
    import tiktoken  # heavy optional: tiktoken

    return tiktoken.Encoding(name=name, pat_str=QWEN_PAT_STR, mergeable_ranks=dict(ranks_items), special_tokens={})


def qwen_reference_encoding(tokenizer: Any) -> Any:
    """A tiktoken ``Encoding`` over the tokenizer's own base ranks (ID < 151643), rebuilt from its vocabulary."""
    decoder = {c: b for b, c in _bytes_to_unicode().items()}
    added = set(guard.added_tokens(tokenizer))
    ranks = []
    for token, idx in tokenizer.get_vocab().items():
        if idx in added:
            continue
        ranks.append((bytes(decoder[ch] for ch in token), int(idx)))
    ranks.sort(key=lambda item: item[1])
    return _qwen_reference(f"qwen-ref-{len(ranks)}", tuple(ranks))


def run_sentinels(tokenizer: Any) -> SentinelReport:
    """Encode every sentinel with the clean tokenizer and compare with the reference; never raises."""
    forbidden = guard.forbidden_ids(tokenizer)
    reference = None
    name = "none available (round-trip and forbidden-ID checks only)"
    if is_qwen_bytelevel(tokenizer):
        reference = qwen_reference_encoding(tokenizer)
        name = "tiktoken(QWEN_PAT_STR, NFC, ranks rebuilt from the tokenizer vocabulary)"
    failures: list[str] = []
    for text in SENTINELS:
        ids = guard.encode(tokenizer, text, add_bos=False)  # the subwords; a required BOS is not text
        default_ids = list(tokenizer(text)["input_ids"])
        if default_ids != ids:
            became = sorted((set(default_ids) - set(ids)) & (forbidden | {guard.base_eos_id(tokenizer)}))
            if became:
                failures.append(
                    f"{text!r}: tokenizer(text) turns literal text into control ID(s) {became} "
                    f"({default_ids[:4]}... vs the clean {ids[:4]}...); it must stay ordinary subwords"
                )
            else:
                failures.append(f"{text!r}: tokenizer(text) adds tokens silently: {default_ids[:4]}... vs {ids[:4]}...")
        if reference is not None:
            expected = reference.encode_ordinary(unicodedata.normalize("NFC", text))
            if ids != expected:
                failures.append(f"{text!r}: IDs {ids} differ from the reference {expected}")
        bad = sorted(set(ids) & forbidden)
        if bad:
            failures.append(
                f"{text!r}: literal text became control/special IDs {bad}; it must encode as ordinary subwords "
                "(split_special_tokens=True, control tokens registered as special)"
            )
        decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if decoded != text:
            failures.append(f"{text!r}: decodes back as {decoded!r}")
    return SentinelReport(reference=name, checked=len(SENTINELS), failures=tuple(failures))


__all__ = ["SENTINELS", "SentinelReport", "qwen_reference_encoding", "run_sentinels"]

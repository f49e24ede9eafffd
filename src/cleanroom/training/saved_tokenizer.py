"""The tokenizer saved beside an adapter must be the clean one the run trained with.

Trainers save the tokenizer (the ``processing_class``) with every checkpoint and the final adapter, and a
backend may rewrite it on the way: Unsloth re-writes ``tokenizer_config.json`` at each save ("Restored
added_tokens_decoder metadata", measured on the H200, docs/gpu-gate.md session 14). Whoever loads the
adapter later loads that tokenizer, so :func:`guard.recheck` on the object in memory is not enough: the
files on disk are reloaded and compared with the clean tokenizer on what decides its behaviour — the
guard's snapshot (chat template, special and added tokens, eos/pad/bos, BOS/EOS flags, a probe encoding),
less the one entry only an in-memory tokenizer can carry (the refusing ``apply_chat_template``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cleanroom import guard
from cleanroom.errors import ContaminationError

#: files whose presence means a tokenizer was saved in a directory
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
#: snapshot entries that describe the in-memory object, not the files
_IN_MEMORY_ONLY = ("apply_chat_template_refused",)


def check_saved_tokenizer(directory: str | Path, tokenizer: Any) -> None:
    """Raise ContaminationError if the tokenizer saved in *directory* differs from *tokenizer* (the clean one).

    A directory without tokenizer files passes (nothing to load); one with them is reloaded offline with
    ``AutoTokenizer`` and compared entry by entry.
    """
    from transformers import AutoTokenizer  # heavy optional: transformers

    directory = Path(directory)
    if not any((directory / name).exists() for name in TOKENIZER_FILES):
        return
    saved = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    want = {k: v for k, v in guard.snapshot(None, tokenizer)["tokenizer"].items() if k not in _IN_MEMORY_ONLY}
    got = {k: v for k, v in guard.snapshot(None, saved)["tokenizer"].items() if k not in _IN_MEMORY_ONLY}
    changed = [f"{k}: {want[k]!r} -> {got.get(k)!r}" for k in want if got.get(k) != want[k]]
    if changed:
        shown = "; ".join(c if len(c) < 300 else c[:300] + "…" for c in changed[:3])
        raise ContaminationError(
            f"{directory}: the tokenizer saved beside the adapter differs from the clean tokenizer the run trained "
            f"with ({len(changed)} field(s): {shown}); whoever loads this adapter would load it — the training "
            "backend rewrote it on save (Unsloth does: use backend=peft), or restore the clean tokenizer files"
        )


__all__ = ["TOKENIZER_FILES", "check_saved_tokenizer"]

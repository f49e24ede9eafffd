"""Keep the clean loader's special-token IDs on the model configs when a Trainer is built.

``transformers.Trainer`` before 5.2x (``align_special_tokens``; 5.17 on the GPU image) copies the
tokenizer's special IDs onto ``model.config`` / ``generation_config``. With a Qwen2.5 *base* tokenizer,
which defines no BOS, it sets ``config.bos_token_id = None`` and rewrites the generation EOS
``151643`` as ``[151643]``; ``guard.recheck`` then (rightly) reports a drift and training stops.
Newer transformers only propagate IDs the tokenizer defines, so the CPU path never saw it.
"""

from __future__ import annotations

from typing import Any

from cleanroom import guard
from cleanroom.control_tokens import ids_of


def undo_trainer_token_alignment(model: Any) -> list[str]:
    """Put back the special-token IDs the clean loader left on the model's configs; returns what changed.

    ``transformers.Trainer`` (``align_special_tokens``, before 5.2x) copies the tokenizer's special
    IDs onto ``model.config`` / ``generation_config`` — with a Qwen2.5 base tokenizer, which has no BOS,
    it sets ``config.bos_token_id = None`` and rewrites the generation EOS ``151643`` as ``[151643]``.
    The tokenizer is not touched, and only *equivalent* rewrites of the ID fields the loader
    snapshotted are reset to the snapshot's values: a field emptied (``None``) or re-wrapped (``151643``
    ↔ ``[151643]``) — nothing that introduces an ID the snapshot did not have. A rewrite to another
    token (``<|im_end|>`` as EOS) is left in place, so ``guard.recheck`` right after refuses it.
    """
    expected = getattr(model, guard.SNAPSHOT_ATTR, None)
    if not expected:
        return []
    targets = {"config": model.config, "generation": getattr(model, "generation_config", None)}
    changed = []
    for key, value in expected.items():
        where, _, attr = key.partition("_")
        obj = targets.get(where)
        current = getattr(obj, attr, None) if obj is not None else None
        if obj is not None and current != value and ids_of(current) <= ids_of(value):
            changed.append(f"{key}: {getattr(obj, attr, None)!r} -> {value!r}")
            setattr(obj, attr, value)
    return changed


__all__ = ["undo_trainer_token_alignment"]

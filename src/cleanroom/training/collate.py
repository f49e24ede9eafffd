"""Data collators that pass every training batch through the contamination guard.

The datasets are already rendered and checked record by record (``guard.render_example`` /
``guard.check_pair``), but a batch is what the model actually sees: padding, truncation and any
trainer-side rewriting happen after those checks. So each collated batch is scanned again, by token
ID: no forbidden (chat-control / special) ID anywhere in the real tokens, and the base EOS only as the
last real token of a sequence. Pad positions (the pad ID is the EOS for Qwen2.5 base) are excluded
through the attention mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from cleanroom.errors import ContaminationError


def _check_final_eos(batch: dict[str, Any], eos_id: int, where: str, *, supervised: bool) -> None:
    """Every sequence ends (last real token) on the EOS; with ``supervised``, that EOS carries a label."""
    mask = batch["attention_mask"]
    ids = batch["input_ids"]
    lengths = mask.sum(dim=1)
    for row in range(ids.shape[0]):
        last = int(lengths[row]) - 1
        if last < 0 or int(ids[row, last]) != eos_id:
            got = None if last < 0 else int(ids[row, last])
            raise ContaminationError(
                f"{where} row {row}: last real token is {got}, expected the base EOS {eos_id}; every example must "
                "end on exactly one EOS — was it truncated? Raise max_length or drop the example"
            )
        if supervised and int(batch["labels"][row, last]) != eos_id:
            raise ContaminationError(
                f"{where} row {row}: the final EOS {eos_id} is not supervised (label "
                f"{int(batch['labels'][row, last])}); the model would never learn to stop — render examples with "
                "guard.render_example"
            )


@dataclass
class _GuardedCollator:
    """A TRL collator followed by ``guard.scan_ids`` and the final-EOS check on every batch.

    ``batches_seen`` and ``tokens_seen`` (real, non-pad tokens) count what passed the guard.
    Subclasses say which TRL collator runs first and whether the final EOS must carry a label.
    """

    tokenizer: Any
    where: str = "batch"
    batches_seen: int = field(default=0, init=False)
    tokens_seen: int = field(default=0, init=False)
    supervised_eos = True

    def _inner_collator(self, pad_id: int) -> Any:
        raise NotImplementedError  # internal: every subclass defines it

    def __post_init__(self) -> None:
        from cleanroom import guard

        self._forbidden = guard.forbidden_ids(self.tokenizer)
        self._eos = guard.base_eos_id(self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self._inner = self._inner_collator(pad if pad is not None else self._eos)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        from cleanroom import guard

        batch = self._inner(examples)
        where = f"{self.where} {self.batches_seen}"
        guard.scan_ids(batch["input_ids"], self._forbidden, final_eos_id=self._eos, where=where,
                       mask=batch["attention_mask"], tokenizer=self.tokenizer)
        _check_final_eos(batch, self._eos, where, supervised=self.supervised_eos)
        self.batches_seen += 1
        self.tokens_seen += int(batch["attention_mask"].sum())
        return batch


@dataclass
class GuardedLanguageModelingCollator(_GuardedCollator):
    """TRL's language-modeling collator (right padding, ``labels`` kept), then the guard."""

    where: str = "sft batch"

    def _inner_collator(self, pad_id: int) -> Any:
        return DataCollatorForLanguageModeling(pad_token_id=pad_id)


@dataclass
class GuardedPreferenceCollator(_GuardedCollator):
    """TRL's preference collator (chosen rows, then rejected rows), then the guard (no labels to check)."""

    max_length: int | None = None
    where: str = "dpo batch"
    supervised_eos = False

    def _inner_collator(self, pad_id: int) -> Any:
        return DataCollatorForPreference(pad_token_id=pad_id, max_length=self.max_length)


__all__ = ["GuardedLanguageModelingCollator", "GuardedPreferenceCollator"]

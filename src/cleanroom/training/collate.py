"""Data collators that pass every training batch through the contamination guard.

The datasets are already rendered and checked record by record (``guard.render_example`` /
``guard.check_pair``), but a batch is what the model actually sees: padding, truncation and any
trainer-side rewriting happen after those checks. So each collated batch is scanned again, by token
ID: no forbidden (chat-control / special) ID anywhere in the real tokens, and the base EOS only as the
last real token of a sequence. Pad positions (the pad ID is the EOS for Qwen2.5 base) are excluded
through the attention mask. Then the loss mask (``guard.check_loss_mask``): the loss covers each
completion and its EOS and never the prompt, whose length each example carries independently.

The checks are tensor reductions on the batch, one host synchronisation each when clean (the batch
is still on the CPU in the collator, so none of them waits on the GPU); a Python walk over rows happens
only to word the first finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from cleanroom import guard
from cleanroom.errors import ContaminationError


def _check_final_eos(batch: dict[str, Any], eos_id: int, where: str, *, supervised: bool) -> Any:
    """Every sequence ends (last real token) on the EOS; with ``supervised``, that EOS carries a label.

    Vectorised: one gather of each row's last real token and one reduction; the first failing row (in row
    order, the EOS before its label) is looked up only when there is one. Returns the real lengths.
    """
    mask = batch["attention_mask"]
    ids = batch["input_ids"]
    lengths = mask.sum(dim=1)
    last = (lengths - 1).clamp(min=0)[:, None]
    no_eos = (lengths == 0) | (ids.gather(1, last)[:, 0] != eos_id)
    bad = no_eos | (batch["labels"].gather(1, last)[:, 0] != eos_id) if supervised else no_eos
    if not bool(bad.any()):  # the one synchronisation
        return lengths
    row = int(bad.nonzero()[0])
    end = int(lengths[row]) - 1
    if bool(no_eos[row]):
        got = None if end < 0 else int(ids[row, end])
        raise ContaminationError(
            f"{where} row {row}: last real token is {got}, expected the base EOS {eos_id}; every example must "
            "end on exactly one EOS — was it truncated? Raise max_length or drop the example"
        )
    raise ContaminationError(
        f"{where} row {row}: the final EOS {eos_id} is not supervised (label "
        f"{int(batch['labels'][row, end])}); the model would never learn to stop — render examples with "
        "guard.render_example"
    )


def _unpack(batch: dict[str, Any], lengths: list[int], pad_id: int, where: str) -> dict[str, Any]:
    """A padding-free batch (one row: the examples of ``lengths`` back to back) as right-padded rows.

    The position IDs must be ``0..n_r-1`` for each packed sequence ``r`` in turn and the row exactly
    ``sum(n_r)`` long: a position that does not restart at an example's first token lets attention (and
    the loss's context) run across two examples. Vectorised: one gather builds the ``[rows, max n]`` view.
    """
    import torch  # heavy optional: torch

    n = torch.tensor(lengths)
    ids, labels, positions = batch["input_ids"][0], batch["labels"][0], batch["position_ids"][0]
    total = int(n.sum())
    starts = torch.cumsum(n, 0) - n
    expected = torch.arange(total) - starts.repeat_interleave(n)
    if ids.shape[0] != total or not torch.equal(positions, expected):
        wrong = "length" if ids.shape[0] != total else f"position {int((positions != expected).nonzero()[0])}"
        raise ContaminationError(
            f"{where}: the padding-free row ({ids.shape[0]} tokens) does not hold the {len(lengths)} examples of "
            f"lengths {lengths} with position IDs restarting at each ({wrong} differs); attention would cross "
            "examples — use TRL's DataCollatorForLanguageModeling(padding_free=True) without pad_to_multiple_of"
        )
    t = torch.arange(int(n.max()))
    mask = t[None, :] < n[:, None]
    index = (starts[:, None] + t[None, :]).clamp(max=max(total - 1, 0))
    return {"input_ids": ids[index].masked_fill(~mask, pad_id), "labels": labels[index].masked_fill(~mask, -100),
            "attention_mask": mask.long()}


@dataclass
class _GuardedCollator:
    """A TRL collator followed by ``guard.scan_ids`` and the final-EOS check on every batch.

    ``batches_seen`` and ``tokens_seen`` (real, non-pad tokens) count what passed the guard.
    Subclasses say which TRL collator runs first and whether the final EOS must carry a label.
    """

    tokenizer: Any
    where: str = "batch"
    #: pad each batch to a multiple of this many tokens (TrainSpec.pad_to_multiple_of); the extra positions
    #: are padding like any other (attention mask 0, no loss), so every check reads them as padding
    pad_to_multiple_of: int | None = None
    batches_seen: int = field(default=0, init=False)
    tokens_seen: int = field(default=0, init=False)
    supervised_eos = True

    def _inner_collator(self, pad_id: int) -> Any:
        raise NotImplementedError  # internal: every subclass defines it

    def __post_init__(self) -> None:
        self._forbidden = guard.forbidden_ids(self.tokenizer)
        self._eos = guard.base_eos_id(self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self._inner = self._inner_collator(pad if pad is not None else self._eos)

    def _prompt_lengths(self, examples: list[dict[str, Any]], where: str) -> list[int]:
        raise NotImplementedError  # internal: every subclass defines it

    def _rows(self, batch: dict[str, Any], examples: list[dict[str, Any]], where: str) -> dict[str, Any]:
        """The batch as right-padded rows with an attention mask, the form every check reads."""
        return batch

    def _check_loss_mask(self, batch: dict[str, Any], prompt_lengths: list[int], lengths: Any, where: str) -> None:
        raise NotImplementedError  # internal: every subclass defines it

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        where = f"{self.where} {self.batches_seen}"
        prompt_lengths = self._prompt_lengths(examples, where)
        batch = self._inner(examples)
        view = self._rows(batch, examples, where)
        guard.scan_ids(view["input_ids"], self._forbidden, final_eos_id=self._eos, where=where,
                       mask=view["attention_mask"], tokenizer=self.tokenizer)
        lengths = _check_final_eos(view, self._eos, where, supervised=self.supervised_eos)
        self._check_loss_mask(view, prompt_lengths, lengths, where)
        self.batches_seen += 1
        self.tokens_seen += int(lengths.sum())
        return batch


@dataclass
class GuardedLanguageModelingCollator(_GuardedCollator):
    """TRL's language-modeling collator (right padding, ``labels`` kept), then the guard.

    With ``padding_free`` TRL concatenates the batch into one row with ``position_ids`` restarting at 0 for
    each example and no pad; the guard then checks each packed sequence as its own row (:func:`_unpack`),
    plus the restarts themselves. Attention stays within each example only because transformers derives a
    block-diagonal mask from the restarts when there is no attention mask *and no KV cache*; TRL's
    ``SFTTrainer.compute_loss`` passes ``use_cache=False`` (tests/training/test_padding_free.py shows a
    forward with a cache mixing the examples).

    Each example carries ``prompt_length``, the length of the prompt's own encoding (``render_examples``
    counts it apart from the labels), so the loss mask is checked against the prompt, not against itself:
    labels ``-100`` on every prompt position and on padding, and equal to the input ID on every completion
    token and the EOS (``guard.check_loss_mask``).
    """

    where: str = "sft batch"
    padding_free: bool = False

    def _inner_collator(self, pad_id: int) -> Any:
        self._pad = pad_id
        return DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=self.padding_free,
                                               pad_to_multiple_of=self.pad_to_multiple_of)

    def _rows(self, batch: dict[str, Any], examples: list[dict[str, Any]], where: str) -> dict[str, Any]:
        return _unpack(batch, [len(ex["input_ids"]) for ex in examples], self._pad, where) if self.padding_free else batch

    def _prompt_lengths(self, examples: list[dict[str, Any]], where: str) -> list[int]:
        missing = [i for i, ex in enumerate(examples) if not isinstance(ex.get("prompt_length"), int)]
        if missing:
            raise ContaminationError(
                f"{where}: example {missing[0]} has no integer prompt_length, so the loss mask cannot be checked "
                "against the prompt; render SFT rows with cleanroom.training.sft.render_examples"
            )
        return [ex["prompt_length"] for ex in examples]

    def _check_loss_mask(self, batch: dict[str, Any], prompt_lengths: list[int], lengths: Any, where: str) -> None:
        labels = batch["labels"]
        guard.check_loss_mask(labels != -100, prompt_lengths, lengths, where=where, labels=labels,
                              input_ids=batch["input_ids"])


@dataclass
class GuardedPreferenceCollator(_GuardedCollator):
    """TRL's preference collator (chosen rows, then rejected rows), then the guard.

    No labels: DPO sums each side's log-probabilities over ``completion_mask``, so that mask must be 0 on
    the ``len(prompt_ids)`` prompt positions and on padding and 1 on the completion and its EOS.
    """

    max_length: int | None = None
    where: str = "dpo batch"
    supervised_eos = False

    def _inner_collator(self, pad_id: int) -> Any:
        return DataCollatorForPreference(pad_token_id=pad_id, max_length=self.max_length,
                                         pad_to_multiple_of=self.pad_to_multiple_of)

    def _prompt_lengths(self, examples: list[dict[str, Any]], where: str) -> list[int]:
        prompts = [len(ex["prompt_ids"]) for ex in examples]
        return prompts + prompts  # the collator stacks the chosen rows, then the rejected rows

    def _check_loss_mask(self, batch: dict[str, Any], prompt_lengths: list[int], lengths: Any, where: str) -> None:
        if "completion_mask" not in batch:
            raise ContaminationError(
                f"{where}: the preference collator returned no completion_mask, so the prompt cannot be excluded "
                "from the log-probability sums; cleanroom is tested with trl 1.16 — install `trl>=1.16,<2`"
            )
        guard.check_loss_mask(batch["completion_mask"], prompt_lengths, lengths, where=where)


__all__ = ["GuardedLanguageModelingCollator", "GuardedPreferenceCollator"]

"""Length-aware samplers for both trainers, seeded by the run: micro-batches of balanced padded cost
(``TrainSpec.batch_rebalance``) and batches of similar-length rows (``TrainSpec.group_by_length``).

With ``train_sampling_strategy="group_by_length"`` transformers' ``LengthGroupedSampler`` permutes the rows, cuts the
permutation into megabatches of up to 50 batches, sorts each by length and deals it out in batches, the longest batch
first; :func:`length_sampler` builds it with the lengths of the rendered columns (the Trainer's own would look for an
``input_ids`` column, which a DPO dataset lacks) and a generator seeded with ``data_seed`` (the Trainer's uses the
global torch RNG). Batches keep their size, so the loss needs no reweighting.

With ``train_sampling_strategy="batch_rebalance"`` transformers' ``BatchRebalanceSampler`` takes each optimizer
step's ``E = batch x accumulation x ranks`` shuffled rows (the same draw on every rank), sorts them by length and
splits them into ``K = ranks x accumulation`` micro-batches of *variable* size whose padded cost
``rows x longest + 0.001 rows x longest^2`` is balanced; each rank yields its ``accumulation`` of them. The Trainer
builds that sampler without a seed (always 42), so :func:`rebalance_sampler` builds it again with the run's
``data_seed`` (``TrainSpec.seed``), the lengths read from the rendered columns.

The step's loss must stay the mean over all its rows. SFT's already is: the Trainer counts the supervised tokens of
every micro-batch of the step (all ranks) and each micro-batch's loss is its token sum over that count. DPO's loss
is a mean over the micro-batch's pairs, divided by the accumulation, so with variable sizes a pair in a small
micro-batch would weigh more; :func:`weigh_pairs` gives each micro-batch the factor that makes it exact. (DPO runs
the lever in one process only: TRL 1.16 all-gathers per-pair rewards for its metrics, which needs the same number of
pairs on every rank; ``train_dpo`` refuses more ranks.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from cleanroom.errors import ConfigError

#: key :func:`weigh_pairs` adds to a DPO micro-batch, which ``GuardedDPOTrainer.compute_loss`` pops before the forward
PAIR_SCALE_KEY = "cleanroom_pair_scale"


def is_on(trainer: Any) -> bool:
    """Whether the trainer samples with ``batch_rebalance`` (TrainSpec.batch_rebalance)."""
    return getattr(trainer.args, "train_sampling_strategy", None) == "batch_rebalance"


def _list_lengths(dataset: Any, column: str) -> list[int]:
    """The length of each row's list in ``column``, read from the Arrow column (the dataset's row order)."""
    return [n for chunk in dataset.with_format("arrow")[column].chunks for n in chunk.value_lengths().to_pylist()]


def sft_lengths(dataset: Any) -> list[int]:
    """Each SFT row's length: its ``input_ids`` (render_examples already refused a row over ``max_length``)."""
    return _list_lengths(dataset, "input_ids")


def dpo_lengths(dataset: Any, max_length: int | None) -> list[int]:
    """Each pair's padded row length: ``prompt + max(chosen, rejected)``, capped at ``max_length``.

    TRL 1.16's ``DataCollatorForPreference`` stacks ``prompt_ids + chosen_ids`` and ``prompt_ids + rejected_ids``
    as two rows, truncates each to ``max_length`` (keep_start) and right-pads all of them to the longest, so a
    pair costs two rows of its longer side.
    """
    prompt, chosen, rejected = (_list_lengths(dataset, c) for c in ("prompt_ids", "chosen_ids", "rejected_ids"))
    longest = [p + max(c, r) for p, c, r in zip(prompt, chosen, rejected, strict=True)]
    return longest if max_length is None else [min(n, max_length) for n in longest]


def length_sampler(trainer: Any, lengths: Callable[[], list[int]]) -> Any | None:
    """The sampler of the trainer's length-aware lever (``batch_rebalance`` or ``group_by_length``), *lengths*
    read only then; None for the Trainer's own (``random``)."""
    strategy = getattr(trainer.args, "train_sampling_strategy", None)
    if strategy == "batch_rebalance":
        return rebalance_sampler(trainer, lengths())
    if strategy != "group_by_length":
        return None
    args = trainer.args
    return _epoch_seeded_grouped_sampler(args.train_batch_size * args.gradient_accumulation_steps, lengths(),
                                         _data_seed(args))


def _data_seed(args: Any) -> int:
    """The seed the Trainer draws its data order with: ``data_seed``, else ``seed``."""
    return int(args.data_seed if args.data_seed is not None else args.seed)


def _epoch_seeded_grouped_sampler(batch_size: int, lengths: list[int], seed: int) -> Any:
    """transformers' ``LengthGroupedSampler`` whose epoch ``e`` is drawn from a generator seeded ``seed + e``, as
    ``BatchRebalanceSampler`` does: the Trainer and accelerate call ``set_epoch`` on the sampler, so a run resumed in
    epoch ``e`` draws that epoch's order before skipping the batches already trained (a generator seeded once would
    replay epoch 0's order after a resume, training other batches than the uninterrupted run)."""
    import torch  # heavy optional: torch
    from transformers.trainer_pt_utils import LengthGroupedSampler  # heavy optional: transformers

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self) -> None:
            super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self) -> Any:
            self.generator.manual_seed(self.seed + self.epoch)
            return super().__iter__()

    return EpochSeededLengthGroupedSampler()


def rebalance_sampler(trainer: Any, lengths: list[int]) -> Any:
    """The ``BatchRebalanceSampler`` the Trainer would build, seeded with ``data_seed`` (else ``seed``).

    ``E = train_batch_size x accumulation x ranks`` rows a step, split over ``ranks x accumulation`` micro-batches;
    ``get_train_dataloader`` recognises the class and uses it as the batch sampler, unsharded (it is rank-aware).
    """
    from transformers.trainer_pt_utils import BatchRebalanceSampler  # heavy optional: transformers

    args = trainer.args
    world = max(1, args.world_size)
    accumulation = args.gradient_accumulation_steps
    step, groups = args.train_batch_size * accumulation * world, world * accumulation
    tail = len(lengths) % step
    if 0 < tail < groups and not args.dataloader_drop_last:
        warnings.warn(f"TrainSpec.batch_rebalance: {len(lengths)} rows leave a last step of {tail} rows for {groups} "
                      f"micro-batches; the sampler fills it with {groups - tail} rows repeated from the epoch's start "
                      "(they train twice that epoch); a row count whose remainder by the step's "
                      f"{step} rows is 0 or at least {groups} avoids it", stacklevel=2)
    return BatchRebalanceSampler(lengths=lengths, effective_batch_size=step,
                                 dp_size=world, grad_accum=accumulation,
                                 seed=_data_seed(args),
                                 rank=args.process_index if world > 1 else 0, drop_last=args.dataloader_drop_last)


def weigh_pairs(trainer: Any, batch_samples: list[dict[str, Any]]) -> None:
    """Give each DPO micro-batch of one optimizer step the loss factor that makes the step's gradient the pair mean.

    Micro-batch ``j`` of rank ``r`` holds ``n_rj`` pairs; TRL's loss for it is ``(1/n_rj) sum_p l_p``. The Trainer
    divides it by the step's accumulation ``G`` (``len(batch_samples)``; DPO takes no ``num_items_in_batch``)
    and sums the backward passes; DDP then averages the ``W`` ranks. The step's gradient is therefore
    ``(1/W) sum_r sum_j (1/G) (1/n_rj) grad sum_p l_p``. Multiplying micro-batch ``j``'s loss by
    ``s_rj = n_rj W G / N``, ``N = sum_rj n_rj`` the step's pairs on all ranks, turns that into
    ``(1/N) sum_all grad l_p``, the mean over every pair of the step, whatever the sizes; with equal sizes
    (``n_rj = N / (W G)``) every factor is 1. ``N`` is counted, not taken as ``E``: a last partial step (fewer rows,
    ``dataloader_drop_last`` off) is the mean over the rows it holds, which are the repeated ones too where the
    sampler had to fill it (:func:`rebalance_sampler` warns). The logged loss is the same mean (the Trainer averages the ranks'
    sums of these scaled losses). The factor rides in the batch (:data:`PAIR_SCALE_KEY`), so a batch that did not
    come through a training step (the step-0 check's) carries none and is unscaled. Written for ``W`` ranks; it runs
    with ``W = 1`` (train_dpo refuses more), where ``N`` is this process's count.
    """
    if not batch_samples:
        return
    pairs = [batch["input_ids"].shape[0] // 2 for batch in batch_samples]  # chosen rows, then rejected rows
    world = trainer.accelerator.num_processes
    if world != 1:  # N over all ranks would take an all-reduce; train_dpo runs the lever in one process only
        raise ConfigError(f"batch_rebalance pair weights on {world} ranks: train_dpo refuses the lever on more than "
                          "one rank (TRL's DPO metrics gather equal micro-batches); set batch_rebalance=False for DPO")
    total = sum(pairs)
    for batch, n in zip(batch_samples, pairs, strict=True):
        batch[PAIR_SCALE_KEY] = n * world * len(batch_samples) / total


def check_token_weighting(trainer: Any, num_items: Any, micro_batches: int) -> None:
    """Refuse a rebalanced SFT step whose loss would be a mean of per-micro-batch means.

    SFT stays the step's token mean only when the Trainer hands every micro-batch the step's count of supervised
    tokens (``num_items_in_batch``, all ranks); a model that does not take loss kwargs (``model_accepts_loss_kwargs``
    False, e.g. gemma4's) gets ``None``, TRL then divides each micro-batch by its own count, and micro-batches of
    variable size weigh their tokens unequally (1.3e-2 nats off in 3 CPU steps). So does
    ``average_tokens_across_devices`` off under several ranks.
    """
    args = trainer.args
    world = max(1, args.world_size)
    if micro_batches * world <= 1:
        return
    if num_items is None:
        raise ConfigError(f"TrainSpec.batch_rebalance: {type(trainer.model).__name__} takes no num_items_in_batch, so "
                          "the step's loss would be a mean of micro-batch means and rebalanced micro-batches of "
                          "variable size would weigh tokens unequally; set batch_rebalance=False for this model")
    if world > 1 and not args.average_tokens_across_devices:
        raise ConfigError("TrainSpec.batch_rebalance on several ranks needs average_tokens_across_devices=True (the "
                          "step's token count over every rank); remove it from trl_overrides or set "
                          "batch_rebalance=False")


def worst_case_rows(batch_size: int, accumulation: int, world: int = 1) -> int:
    """The most rows one rebalanced micro-batch can hold: the step's ``E = batch x accumulation x ranks`` rows less one
    for each of the other ``ranks x accumulation - 1`` micro-batches (each holds at least one). What a memory estimate
    must size under ``batch_rebalance``: the sampler balances cost, it caps no micro-batch."""
    return batch_size * accumulation * world - accumulation * world + 1


def rebalance_record(levers: dict[str, Any], world: int, accumulation: int) -> dict[str, Any]:
    """``levers`` with how many micro-batches a step is split into under ``batch_rebalance`` (``groups_per_step``);
    with one the sampler only sorts the step's rows: the reason says so and a warning (the run log) too."""
    record = dict(levers["batch_rebalance"])
    if record["on"]:
        record["groups_per_step"] = world * accumulation
        if world * accumulation == 1:
            record["reason"] += ("; here one micro-batch a step (1 rank, no accumulation): the rows are only "
                                 "reordered, no padding is saved")
            warnings.warn("TrainSpec.batch_rebalance with one micro-batch a step (1 rank, gradient_accumulation_steps "
                          "1) only reorders the step's rows and saves no padding; raise gradient_accumulation_steps "
                          "(smaller batch_size, same global batch) for it to split rows by length", stacklevel=3)
        if levers.get("padding_free", {}).get("on"):
            warnings.warn("TrainSpec.batch_rebalance with padding_free: a packed micro-batch has no padding to save, so "
                          "rebalancing only reorders rows between the accumulated micro-batches", stacklevel=3)
    return levers | {"batch_rebalance": record}


__all__ = ["PAIR_SCALE_KEY", "check_token_weighting", "dpo_lengths", "is_on", "length_sampler", "rebalance_record",
           "rebalance_sampler", "sft_lengths", "weigh_pairs", "worst_case_rows"]

"""Supervised fine-tuning of a base model with LoRA (QLoRA on a 4-bit model), through TRL's SFTTrainer.

The data are plain strings, ``{"prompt", "completion"}``, never conversations, so no chat template
can be applied anywhere. We tokenise them ourselves with ``guard.render_example`` (prompt ids +
completion ids + one EOS; labels ``-100`` on the prompt) and hand TRL ``input_ids`` + ``labels`` with
``skip_prepare_dataset``, so TRL never tokenises text. The loss is the mean negative log-likelihood
of the supervised (completion + EOS) tokens only:

    L = - (1 / |C|) * sum_{t in C} log p(x_t | x_<t),   C = positions whose label != -100

Every batch passes ``guard.scan_ids`` in the collator; ``guard.recheck`` runs right after the trainer
is built (TRL may rewrite eos/pad on the tokenizer and the model configs) and after saving.
Checkpoints hold the adapter only (TRL saves a PEFT model's adapter), and ``resume=True`` continues
from the newest ``checkpoint-*`` in ``output_dir`` with its optimizer, scheduler and RNG states.
"""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cleanroom import distributed, guard
from cleanroom.errors import ConfigError, DependencyError, InputError
from cleanroom.training import rebalance
from cleanroom.training.micro_batch import plan_micro_batch
from cleanroom.training.result import TrainResult, logged_losses, peak_memory, reset_peak_memory
from cleanroom.training.saved_tokenizer import check_saved_tokenizer
from cleanroom.training.special_ids import undo_trainer_token_alignment
from cleanroom.training.specs import LoraSpec, TrainSpec


def check_specs(lora: Any, train: Any) -> None:
    """The trainers' shared entry check: real specs (validated at construction), and the tracker installed."""
    if not isinstance(lora, LoraSpec):
        raise ConfigError(f"lora must be a cleanroom.training.LoraSpec, got {type(lora).__name__}")
    if not isinstance(train, TrainSpec):
        raise ConfigError(f"train must be a cleanroom.training.TrainSpec, got {type(train).__name__}")
    check_tracker(train.report_to)


#: report_to value -> (module transformers' integration imports, pip package that provides it)
TRACKERS = {"tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"), "wandb": (("wandb",), "wandb"),
            "mlflow": (("mlflow",), "mlflow")}


def check_tracker(report_to: str) -> None:
    """Experiment tracking is optional: a tracker whose package is missing is a DependencyError with the
    install hint, raised before any work (transformers would fail deep inside the trainer's init)."""
    if report_to == "none":
        return
    if report_to not in TRACKERS:
        raise ConfigError(f"report_to = {report_to!r} is invalid; allowed: none, {', '.join(TRACKERS)}")
    modules, package = TRACKERS[report_to]
    if not any(importlib.util.find_spec(m) is not None for m in modules):
        raise DependencyError(f"report_to: {report_to} needs the {package} package, which is not installed; "
                              f"`pip install {package}` or set report_to=none")


def is_quantized(model: Any) -> bool:
    """True for a bitsandbytes 4-bit or 8-bit model (QLoRA path)."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def render_examples(tokenizer: Any, examples: Sequence[dict[str, Any]], *, max_length: int, name: str) -> list[dict]:
    """Each ``{"prompt", "completion"}`` through ``guard.render_example`` (raises on the first bad one).

    Rows are ``input_ids``, ``labels`` and ``prompt_length`` (the prompt's encoded length, which the
    guarded collator checks the labels against on every batch).
    """
    if not isinstance(examples, Sequence) or len(examples) == 0:
        raise InputError(f"{name}: expected a non-empty list of {{'prompt', 'completion'}} dicts, got {examples!r:.80}")
    rows = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or not isinstance(ex.get("prompt"), str) or not isinstance(ex.get("completion"), str):
            raise InputError(
                f"{name} record {i}: expected plain strings 'prompt' and 'completion' (no conversations), "
                f"got keys {sorted(ex) if isinstance(ex, dict) else type(ex).__name__}"
            )
        record = str(ex.get("record_id", i))
        r = guard.render_example(tokenizer, ex["prompt"], ex["completion"], max_length=max_length, record=record)
        # counted from the prompt's own encoding, not from the labels, so the collator can check the labels
        prompt_length = len(guard.encode(tokenizer, ex["prompt"]))
        rows.append({"input_ids": list(r["input_ids"]), "labels": list(r["labels"]), "prompt_length": prompt_length})
    return rows


#: Files a checkpoint must hold to be resumable (the trainer writes them one by one, so a kill during
#: a save leaves a directory without some of them).
CHECKPOINT_FILES = ("trainer_state.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt")


def resume_checkpoint(output_dir: Path, resume: bool) -> str | None:
    """The newest *complete* ``checkpoint-*`` in ``output_dir`` when resuming, else None (a fresh start).

    A checkpoint directory missing any of :data:`CHECKPOINT_FILES` was cut off mid-save (the process
    was killed); rank 0 removes it (every rank picks the same checkpoint from the same directory), and
    the previous complete checkpoint is used.
    """


    if not resume:
        return None
    found = []  # every rank reaches the barrier below, whether or not rank 0 has created output_dir yet
    for d in Path(output_dir).iterdir() if Path(output_dir).is_dir() else ():
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and d.is_dir():
            found.append((int(m.group(1)), d))
    newest = [d for _, d in sorted(found, reverse=True)]
    complete = [d for d in newest if all((d / name).is_file() for name in CHECKPOINT_FILES)]
    cut = newest[: newest.index(complete[0])] if complete else newest

    def remove_cut() -> None:  # each was killed mid-save
        for d in cut:
            shutil.rmtree(d, ignore_errors=True)

    distributed.on_main(distributed.world(), remove_cut)
    return str(complete[0]) if complete else None


def train_and_save(trainer: Any, tokenizer: Any, output_dir: Path, checkpoint: str | None) -> tuple[float, int, str, Path]:
    """Train (resuming from *checkpoint*), save the adapter to ``output_dir/adapter``, recheck the guard.

    Under a launcher the Trainer saves on rank 0 only; every rank waits for that save before returning.
    Returns ``(seconds, peak_mem_bytes, peak_mem_kind, adapter_dir)``; shared by SFT and DPO.
    """

    reset_peak_memory()
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    undo_trainer_token_alignment(trainer.model)  # transformers 5.17 aligns again inside train()
    peak, peak_kind = peak_memory()
    adapter_dir = output_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    distributed.barrier(distributed.world())
    guard.recheck(trainer.model, tokenizer)
    check_saved_tokenizer(adapter_dir, tokenizer)  # the files on disk too, not only the object
    return seconds, peak, peak_kind, adapter_dir


def with_callbacks(callbacks: Sequence[Any], budget: Callable[[], str | None] | None) -> tuple[list[Any], Any]:
    """The trainer's callbacks plus a ``BudgetCallback`` when a budget is polled; returns (callbacks, budget_cb)."""
    # heavy optional: transformers
    from cleanroom.training.budget import BudgetCallback

    budget_cb = BudgetCallback(budget) if budget is not None else None
    return [*callbacks, *([budget_cb] if budget_cb is not None else [])], budget_cb


def distributed_spec(train: TrainSpec) -> tuple[TrainSpec, dict[str, Any]]:
    """*train* divided over the launched ranks (same global batch) and the record of it for provenance."""

    w = distributed.world()
    per_rank = distributed.divide_batch(train, w)
    return per_rank, distributed.describe(w) | distributed.batch_record(per_rank, w)


def run_result(trainer: Any, run: tuple[float, int, str, Path], checkpoint: str | None, tokens: int,
               budget_cb: Any, **extra: Any) -> TrainResult:
    """The ``TrainResult`` of a finished trainer; ``run`` is what :func:`train_and_save` returned."""
    seconds, peak, peak_kind, adapter_dir = run
    losses, loss_steps, eval_losses = logged_losses(trainer.state.log_history)
    return TrainResult(adapter_dir=adapter_dir, losses=losses, loss_steps=loss_steps, eval_losses=eval_losses,
                       steps=int(trainer.state.global_step), seconds=seconds, tokens=tokens,
                       tokens_per_s=tokens / seconds if seconds > 0 else 0.0, peak_mem_bytes=peak,
                       peak_mem_kind=peak_kind, stopped_reason=budget_cb.reason if budget_cb is not None else None,
                       resumed_from=checkpoint, model=trainer.model, **extra)


def _guarded_sft_trainer_class() -> Any:
    """SFTTrainer that keeps the ``prompt_length`` column for the collator's loss-mask check.

    The Trainer drops dataset columns that are not model inputs; TRL keeps ``input_ids``, ``labels`` and
    ``seq_lengths``. Without ``prompt_length`` the collator refuses every batch (it fails closed). With
    ``batch_rebalance`` or ``group_by_length`` the sampler is seeded by the run's seed and epoch
    (:func:`cleanroom.training.rebalance.length_sampler`).
    """
    from trl import SFTTrainer  # heavy optional: trl

    class GuardedSFTTrainer(SFTTrainer):
        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            columns: list[str] = list(self._signature_columns or [])
            if "prompt_length" not in columns:
                # transformers declares the attribute as None until the first call sets it
                self._signature_columns = [*columns, "prompt_length"]  # type: ignore[assignment]

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            data = train_dataset if train_dataset is not None else self.train_dataset
            sampler = rebalance.length_sampler(self, lambda: rebalance.sft_lengths(data))
            return sampler if sampler is not None else super()._get_train_sampler(train_dataset)

        def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> Any:
            batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
            if rebalance.is_on(self):
                rebalance.check_token_weighting(self, num_items, len(batch_samples))
            return batch_samples, num_items

        def evaluation_loop(self, dataloader: Any, description: str, prediction_loss_only: bool | None = None,
                            ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval") -> Any:
            if getattr(self.model, "cleanroom_backend", None) == "unsloth":
                # Unsloth trains in one process and patches the loss; its evaluation stays the Trainer's own loop,
                # the path the H200 ran (docs/gpu-gate.md, session 15), until the token-weighted one has run there
                return super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                               metric_key_prefix)
            return token_weighted_eval(self, dataloader.dataset, metric_key_prefix)

    return GuardedSFTTrainer


def token_weighted_eval(trainer: Any, dataset: Any, prefix: str = "eval") -> Any:
    """``{prefix}_loss``: the mean loss over every supervised token of the eval set, the same on any number of ranks.

    The Trainer's own loop averages per-batch means, so its figure depends on how the rows fall into batches:
    the N-rank run of the 2-rank test measured 11.898 where one process measured 11.916 on the same adapter. Here each rank
    takes every N-th row (no row twice, none padded in), sums its token losses and counts its tokens, and one
    all-reduce gives ``sum / count``. Every rank runs the same number of batches, a rank out of rows forwarding
    row 0 with weight 0, because the trainer's loss gathers its metrics across ranks on every batch. Only the loss
    is token-weighted: TRL's ``eval_entropy`` and ``eval_mean_token_accuracy`` stay its per-batch figures
    (informational; such a weight-0 batch counts in them). The unwrapped model serves one process and DDP, whose
    every rank holds the whole model; a sharded one (FSDP, DeepSpeed) is refused rather than evaluated wrongly.
    """
    import torch  # heavy optional: torch
    from accelerate.utils import DistributedType  # heavy optional: accelerate
    from transformers.trainer_utils import EvalLoopOutput  # heavy optional: transformers

    kind = trainer.accelerator.distributed_type
    if kind not in (DistributedType.NO, DistributedType.MULTI_GPU, DistributedType.MULTI_CPU):
        raise ConfigError(f"SFT evaluation under {kind}: cleanroom evaluates the whole model on every rank (one "
                          "process or DDP); run without FSDP/DeepSpeed, or without eval examples")
    world, rank = trainer.accelerator.num_processes, trainer.accelerator.process_index
    size = trainer.args.per_device_eval_batch_size
    mine = list(range(rank, len(dataset), world))
    batches = max(math.ceil(math.ceil(len(dataset) / world) / size), 1)
    model = trainer.model  # unwrapped: a DDP forward would broadcast buffers, a collective per batch
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=trainer.args.device)
    with torch.no_grad():
        for b in range(batches):
            rows = mine[b * size:(b + 1) * size]
            inputs = trainer._prepare_inputs(trainer.data_collator([dataset[i] for i in rows or [0]]))
            labels = inputs["labels"]
            with trainer.compute_loss_context_manager():
                loss = trainer.compute_loss(model, inputs)
            if rows:  # the loss is sum / count over this batch's supervised (shifted) positions
                count = (labels[..., 1:] != -100).sum()
                total += torch.stack([loss.detach().double() * count, count.double()])
    total = trainer.accelerator.reduce(total, reduction="sum")
    loss_value = float(total[0] / total[1]) if total[1] > 0 else float("nan")
    # no predictions, as the Trainer's own loop returns them with prediction_loss_only (its annotation omits None)
    return EvalLoopOutput(predictions=None, label_ids=None, metrics={f"{prefix}_loss": loss_value},  # type: ignore[arg-type]
                          num_samples=len(dataset))


def train_sft(
    model: Any,
    tokenizer: Any,
    examples: Sequence[dict[str, Any]],
    *,
    lora: LoraSpec,
    train: TrainSpec,
    output_dir: Path,
    eval_examples: Sequence[dict[str, Any]] | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    budget: Callable[[], str | None] | None = None,
) -> TrainResult:
    """Train a fresh LoRA adapter on ``examples``; the adapter is saved to ``output_dir / "adapter"``.

    ``model`` is the base model from ``CleanModelLoader.load()`` (4-bit → QLoRA, prepared by :func:`prepare_kbit`
    as ``train.kbit_fp32_upcast`` says). ``budget`` is polled after every step (see ``BudgetCallback``).
    Under ``accelerate launch`` the Trainer runs data-parallel, with ``train``'s global batch kept
    (:func:`cleanroom.distributed.divide_batch`; recorded in ``result.distributed``).
    Returns a ``TrainResult``; ``result.model`` is the PEFT-wrapped model.
    """

    check_specs(lora, train)
    # The Unsloth backend attaches its LoRA at load time (load_unsloth marks the model); anything else
    # arriving with an adapter is a mistake.
    prewrapped = getattr(model, "cleanroom_backend", None) == "unsloth"
    _refuse_adapter(model, prewrapped)
    train, dist = distributed_spec(train)
    train, micro = plan_micro_batch(train, model, lora, dpo=False)
    rows = render_examples(tokenizer, examples, max_length=train.max_length, name="sft train")
    eval_rows = render_examples(tokenizer, eval_examples, max_length=train.max_length, name="sft eval") if eval_examples else None
    if train.precompute_ref_log_probs:
        raise ConfigError("TrainSpec.precompute_ref_log_probs is a DPO option (SFT has no reference model); set it "
                          "to False for the SFT stage")
    if is_quantized(model) and not prewrapped:
        model = prepare_kbit(model, train)
    cbs, budget_cb = with_callbacks(callbacks, budget)
    trainer = _sft_trainer(model, tokenizer, rows, eval_rows, lora=None if prewrapped else lora, train=train,
                           output_dir=Path(output_dir), callbacks=cbs)
    undo_trainer_token_alignment(trainer.model)
    guard.recheck(trainer.model, tokenizer)  # TRL may have rewritten eos/pad on tokenizer or configs

    # the levers' record before training, so its warnings (a rebalance that cannot split rows) precede the run
    levers = rebalance.rebalance_record(train.levers(), dist["world_size"], train.gradient_accumulation_steps)
    checkpoint = resume_checkpoint(Path(output_dir), resume)
    run = train_and_save(trainer, tokenizer, Path(output_dir), checkpoint)
    # TRL logs the cumulative count of real train tokens of *this* trainer over all ranks (eval batches excluded).
    tokens = next((int(e["num_tokens"]) for e in reversed(trainer.state.log_history) if "num_tokens" in e), 0)
    return run_result(trainer, run, checkpoint, tokens, budget_cb, distributed=dist,
                      levers=levers | {"micro_batch": micro})


def prepare_kbit(model: Any, train: TrainSpec) -> Any:
    """A 4-bit/8-bit base made ready for LoRA training, as ``train.kbit_fp32_upcast`` says.

    On: peft's ``prepare_model_for_kbit_training`` (every non-quantized weight cast to fp32, all frozen,
    input grads for gradient checkpointing). Off, what TRL's trainers do: the weights stay in the loaded
    dtype and frozen. Either way TRL then attaches the LoRA, casts its weights to bf16 (a quantized model's
    adapter, as in the QLoRA paper) and calls ``enable_input_require_grads`` when gradient checkpointing is on.
    """
    if train.kbit_fp32_upcast:
        # heavy optional: peft
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=train.gradient_checkpointing)
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _refuse_adapter(model: Any, prewrapped: bool) -> None:
    # heavy optional: peft
    from peft import PeftModel

    if isinstance(model, PeftModel) and not prewrapped:
        raise ConfigError(
            "train_sft got a model that already carries a PEFT adapter; pass the base model (merge an earlier "
            "adapter first with merge_and_verify)"
        )


def _sft_trainer(model: Any, tokenizer: Any, rows: list[dict], eval_rows: list[dict] | None, *, lora: LoraSpec | None,
                 train: TrainSpec, output_dir: Path, callbacks: list[Any]) -> Any:
    """The guarded SFTTrainer: our collator (the guard on every batch), our rows, early stopping if asked."""
    # heavy optional: datasets
    from datasets import Dataset

    # heavy optional: transformers
    from transformers import EarlyStoppingCallback

    # heavy optional: trl
    from trl import SFTConfig

    # heavy optional: trl
    from cleanroom.training.collate import GuardedLanguageModelingCollator

    kwargs = train.trainer_kwargs(str(output_dir), has_eval=eval_rows is not None)
    if train.padding_free:
        # TRL refuses its own padding_free flag beside a custom collator, and would refuse max_length without
        # packing; our collator packs, and render_examples already refused every row over max_length.
        kwargs["max_length"] = None
    args = SFTConfig(**kwargs, completion_only_loss=True, dataset_kwargs={"skip_prepare_dataset": True})
    if train.early_stopping_patience is not None:
        callbacks = [*callbacks, EarlyStoppingCallback(train.early_stopping_patience, train.early_stopping_threshold)]
    return _guarded_sft_trainer_class()(
        model=model,
        args=args,
        data_collator=GuardedLanguageModelingCollator(tokenizer, where="sft batch", padding_free=train.padding_free,
                                                      pad_to_multiple_of=train.pad_to_multiple_of),
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows is not None else None,
        processing_class=tokenizer,
        peft_config=lora.to_peft() if lora is not None else None,
        callbacks=callbacks,
    )


__all__ = ["render_examples", "train_sft"]

"""Direct Preference Optimization with the SFT policy as the reference, through TRL's DPOTrainer.

The DPO loss for a pair (prompt x, chosen y_w, rejected y_l), policy pi, reference pi_ref:

    r(y)  = beta * [log pi(y | x) - log pi_ref(y | x)]          (implicit reward)
    L     = - log sigmoid( r(y_w) - r(y_l) )                    (margin = r(y_w) - r(y_l))

At step 0 the policy *is* the reference, so r = 0 for every completion, the margin is 0 and
``L = -log sigmoid(0) = ln 2 = 0.693147...``. That holds only if the reference really is the SFT
policy: here ``model`` is the SFT model (a base with the SFT adapter merged in) and a fresh LoRA is
attached (B = 0, so it starts as the identity); TRL's reference for a PEFT model without ``ref_model``
is the same model with the adapter disabled, i.e. the SFT policy. If ``model`` still carries the SFT
adapter instead, TRL copies it to a frozen ``ref`` adapter and trains the copy: the same reference.
We measure the step-0 loss and margin on the first training batch before any update and raise if
``|L - ln 2|`` or ``|margin|`` exceeds ``step0_atol`` (1e-3 by default): a check, not an assumption.
With ``TrainSpec.precompute_ref_log_probs`` the reference terms come from log-probs TRL computes once
before training (their sha256 goes into ``TrainResult.levers``), and the step-0 check compares the policy
with those cached values, so a cache that is not the policy's fails it too.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cleanroom import distributed, guard
from cleanroom.artifacts import atomic_write_bytes, pretty_json
from cleanroom.errors import ConfigError, DependencyError, GateError, InputError
from cleanroom.spec import check_value
from cleanroom.training import packed_forward, rebalance
from cleanroom.training.micro_batch import plan_micro_batch
from cleanroom.training.result import TrainResult
from cleanroom.training.sft import (
    check_specs,
    distributed_spec,
    is_quantized,
    prepare_kbit,
    resume_checkpoint,
    run_result,
    train_and_save,
    with_callbacks,
)
from cleanroom.training.special_ids import undo_trainer_token_alignment
from cleanroom.training.specs import DpoBeta, LoraSpec, Step0Atol, TrainSpec

STEP0_TOLERANCE = 1e-3


def render_pairs(tokenizer: Any, pairs: Sequence[dict[str, Any]], max_length: int) -> list[dict[str, list[int]]]:
    """Each pair as ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` (each completion ends on one EOS).

    Rendered by ``guard.render_example`` (after ``guard.check_pair``), never by TRL: TRL would append
    the EOS as *text* and tokenise it, which a clean tokenizer (``split_special_tokens=True``) turns
    into ordinary subwords instead of the EOS ID.
    """
    if not isinstance(pairs, Sequence) or len(pairs) == 0:
        raise InputError(f"dpo pairs: expected a non-empty list of {{'prompt', 'chosen', 'rejected'}} dicts, got {pairs!r:.80}")
    rows = []
    for i, p in enumerate(pairs):
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) for k in ("prompt", "chosen", "rejected")):
            raise InputError(
                f"dpo pair {i}: expected plain strings 'prompt', 'chosen', 'rejected' (no conversations), got "
                f"keys {sorted(p) if isinstance(p, dict) else type(p).__name__}"
            )
        record = str(p.get("record_id", i))
        guard.check_pair(tokenizer, p["prompt"], p["chosen"], p["rejected"], max_length=max_length, record=record)
        sides = []
        for side in ("chosen", "rejected"):
            r = guard.render_example(tokenizer, p["prompt"], p[side], max_length=max_length, record=f"{record} {side}")
            n_prompt = sum(1 for label in r["labels"] if label == -100)
            sides.append((r["input_ids"][:n_prompt], r["input_ids"][n_prompt:]))
        (prompt_ids, chosen_ids), (prompt_ids_r, rejected_ids) = sides
        if prompt_ids != prompt_ids_r:  # both are encode(prompt); a difference is a guard bug
            raise InputError(f"dpo pair {record}: the prompt tokenised differently on the two sides")
        rows.append({"prompt_ids": prompt_ids, "chosen_ids": chosen_ids, "rejected_ids": rejected_ids})
    return rows


def _guarded_trainer_class(packed: bool = False) -> Any:
    """DPOTrainer whose dataset preparation is the identity: the rows arrive tokenised by the guard.

    With ``packed`` (``padding_free``) every fused-LM-head forward runs packed (:mod:`cleanroom.training.packed_forward`).

    With ``group_by_length`` the sampler is seeded by the run's seed and epoch (:func:`cleanroom.training.rebalance.
    length_sampler`). With ``batch_rebalance`` the sampler is seeded by the run's seed and each micro-batch's loss is weighed by its
    pair count, so the step's gradient stays the mean over its pairs (:mod:`cleanroom.training.rebalance`).
    """
    from trl import DPOTrainer  # heavy optional: trl

    _require_dataset_hook(DPOTrainer)

    class GuardedDPOTrainer(DPOTrainer):
        #: seconds of each reference precompute pass (TRL runs it while the trainer is built)
        precompute_seconds: tuple[float, ...] = ()

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            return dataset

        def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
            self.install_packing()
            started = time.perf_counter()
            out = super()._precompute_ref_logps(dataset, name, batch_size)
            self.precompute_seconds = (*self.precompute_seconds, time.perf_counter() - started)
            return out

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            data = train_dataset if train_dataset is not None else self.train_dataset
            max_length = self.args.max_length  # type: ignore[attr-defined]  # a DPOConfig
            sampler = rebalance.length_sampler(self, lambda: rebalance.dpo_lengths(data, max_length))
            return sampler if sampler is not None else super()._get_train_sampler(train_dataset)

        def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> Any:
            batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
            if rebalance.is_on(self):
                rebalance.weigh_pairs(self, batch_samples)
            return batch_samples, num_items

        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            self.install_packing()
            scale = inputs.pop(rebalance.PAIR_SCALE_KEY, None)  # only a training step's micro-batches carry one
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if scale is None:
                return out
            return (out[0] * scale, out[1]) if return_outputs else out * scale

        def install_packing(self) -> None:
            if packed:
                packed_forward.install(packed_model(self))

        def training_step(self, *args: Any, **kwargs: Any) -> Any:
            step = super().training_step
            return _packed_step(self, step, *args, **kwargs) if packed else step(*args, **kwargs)

    return GuardedDPOTrainer


def _require_dataset_hook(trainer_class: Any) -> None:
    if not hasattr(trainer_class, "_prepare_dataset"):
        import trl  # heavy optional: trl

        raise DependencyError(f"trl {trl.__version__}: DPOTrainer has no _prepare_dataset to replace; cleanroom is "
                              "tested with trl 1.16 — install `trl>=1.16,<2`")


def _packed_step(trainer: Any, step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One padding-free training step (micro-batch); a GateError, at the first step, when no forward with gradients
    (the trained policy's) ran packed in it."""
    before = packed_forward.counts(packed_model(trainer))
    out = step(*args, **kwargs)
    packed_forward.require_packed(packed_model(trainer), before, "in a training step", trained=True)
    return out


def packed_model(trainer: Any) -> Any:
    """The transformers model TRL gave its fused LM head (under peft the base model): where packing is installed."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def measure_step0(trainer: Any) -> tuple[float, float]:
    """(loss, mean reward margin) of the first training batch with the initial weights, no update.

    With precomputed reference log-probs the batch is the first one TRL precomputed them on (rows
    ``0..b-1`` in dataset order, the same padding), so policy and cached reference are computed on the same
    shapes: at step 0 they must then agree to the last bit, as the live reference does, and a cache from other
    weights or other data fails the check. Both run under the trainer's autocast, as training and TRL's
    precompute do.
    """
    import torch  # heavy optional: torch

    if getattr(trainer, "precompute_ref_logps", False):
        size = trainer.args.precompute_ref_batch_size or trainer.args.per_device_train_batch_size
        data = trainer.train_dataset
        batch = trainer.data_collator([data[i] for i in range(min(size, len(data)))])
    else:
        batch = next(iter(trainer.get_train_dataloader()))
    device = next(p for p in trainer.model.parameters()).device
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
    trainer.model.train()  # the trainer's metrics are keyed by mode; TRL disables dropout for DPO
    with torch.no_grad(), trainer.accelerator.autocast():
        loss = float(trainer.compute_loss(trainer.model, batch))
    logs: dict[str, float] = {}
    trainer.log(logs)  # folds the metrics of that forward (rewards/margins, ...) into `logs` and clears them
    return loss, float(logs["rewards/margins"])


def train_dpo(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[dict[str, Any]],
    *,
    lora: LoraSpec,
    train: TrainSpec,
    beta: float,
    output_dir: Path,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    budget: Callable[[], str | None] | None = None,
    step0_atol: float = STEP0_TOLERANCE,
) -> TrainResult:
    """Train DPO on ``pairs`` against the SFT policy; the adapter is saved to ``output_dir / "adapter"``.

    ``model``: the SFT model, merged (a fresh LoRA from ``lora`` is attached) or still carrying its SFT
    adapter (TRL freezes a copy as the reference and ``lora`` is not used). Returns a ``TrainResult``
    with ``step0_loss`` and ``step0_margin`` (measured, checked against ln 2 and 0 within ``step0_atol``, and
    kept in ``output_dir/step0.json`` so a resumed run reports the same values). Under ``accelerate
    launch`` it runs data-parallel with ``train``'s global batch kept, as :func:`train_sft` does.
    """
    # heavy optional: peft
    from peft import PeftModel

    beta, step0_atol = _check_dpo_args(lora, train, beta, step0_atol)
    output_dir = Path(output_dir)
    train, dist = distributed_spec(train)
    _check_rebalance_ranks(train, dist["world_size"])
    train, micro = plan_micro_batch(train, model, lora, dpo=True)
    rows = render_pairs(tokenizer, pairs, train.max_length)
    has_adapter = isinstance(model, PeftModel)
    if is_quantized(model) and not has_adapter:
        model = prepare_kbit(model, train)
    cbs, budget_cb = with_callbacks(callbacks, budget)
    # TRL's reference precompute runs while the trainer is built. In eval mode, bitsandbytes on a CPU repacks
    # the 4-bit weights for inference on a no-grad forward, irreversibly, and every training forward after it
    # fails; train mode is the same function here (TRL turns dropout off for DPO).
    model.train()
    started = time.perf_counter()
    trainer = _dpo_trainer(model, tokenizer, rows, lora=None if has_adapter else lora, train=train, beta=beta,
                           output_dir=output_dir, callbacks=cbs)
    levers = _levers(trainer, train, dist["world_size"], micro, built=time.perf_counter() - started)
    undo_trainer_token_alignment(trainer.model)
    guard.recheck(trainer.model, tokenizer)
    if has_adapter:
        check_frozen_reference(trainer.model)
    # what the checkpoints are of: a resume must continue the same adapter on the same backend
    setup = {"backend": getattr(model, "cleanroom_backend", "peft"), "in_place": has_adapter}

    checkpoint = resume_checkpoint(output_dir, resume)
    step0_loss, step0_margin = _step0(trainer, output_dir, checkpoint, step0_atol, setup, packed=train.padding_free)
    run = train_and_save(trainer, tokenizer, output_dir, checkpoint)
    if train.padding_free:
        levers["padding_free"]["packed_forwards"] = packed_forward.counts(packed_model(trainer))[0]
    tokens = distributed.sum_across(trainer.data_collator.tokens_seen, distributed.world())
    return run_result(trainer, run, checkpoint, tokens, budget_cb, step0_loss=step0_loss, step0_margin=step0_margin,
                      distributed=dist, levers=levers)


def _levers(trainer: Any, train: TrainSpec, world_size: int, micro: Any, *, built: float) -> dict[str, Any]:
    """The run's lever record; with ``precompute_ref_log_probs`` (computed by TRL while the trainer was built, in
    ``built`` seconds) the cache's digest, the reference pass's seconds and the rest of building the trainer
    (``setup_seconds``: LoRA attachment and TRL's hash of every model tensor, its cache key), paid once per run."""
    levers = rebalance.rebalance_record(train.levers(), world_size, train.gradient_accumulation_steps) | {
        "micro_batch": micro}
    if train.precompute_ref_log_probs:
        levers["precompute_ref_log_probs"].update(sha256=ref_logps_digest(trainer.train_dataset),
                                                  seconds=round(sum(trainer.precompute_seconds), 3),
                                                  setup_seconds=round(built - sum(trainer.precompute_seconds), 3))
    return levers


def _setup_words(setup: dict[str, Any]) -> str:
    how = "the attached adapter trained in place" if setup["in_place"] else "a fresh adapter over the merged model"
    return f"{how} on {setup['backend']}"


def ref_logps_digest(dataset: Any) -> str:
    """sha256 of the cached reference log-probs, row by row: ``ref_chosen_logps`` then ``ref_rejected_logps``,
    each as little-endian float32 (the dtype TRL stores), so a rerun on the same data and weights can be
    compared bit for bit."""
    h = hashlib.sha256()
    for column in ("ref_chosen_logps", "ref_rejected_logps"):
        values = [float(v) for v in dataset[column]]  # float32 values, exact as Python floats
        h.update(column.encode())
        h.update(struct.pack(f"<{len(values)}f", *values))
    return h.hexdigest()


def _check_dpo_args(lora: Any, train: Any, beta: Any, step0_atol: Any) -> tuple[float, float]:
    """The specs, and beta/step0_atol by the profile's own dpo field types (one rule, one wording)."""
    check_specs(lora, train)
    beta = check_value("dpo.beta", beta, DpoBeta)
    step0_atol = check_value("dpo.step0_atol", step0_atol, Step0Atol)
    if train.early_stopping_patience is not None:
        raise ConfigError("TrainSpec.early_stopping_patience is not supported for DPO (no eval pairs); set it to None")
    return beta, step0_atol


def _check_rebalance_ranks(train: TrainSpec, world_size: int) -> None:
    """batch_rebalance only in one process: TRL 1.16's DPO loss all-gathers per-pair rewards for its metrics, which
    needs the same number of pairs on every rank, and rebalanced micro-batches differ in size across ranks (2 gloo
    ranks: a size mismatch in the gather; NCCL would hang)."""
    if train.batch_rebalance and world_size > 1:
        raise ConfigError(f"TrainSpec.batch_rebalance is not supported for DPO on {world_size} ranks (TRL's DPO "
                          "metrics gather equal-sized micro-batches from every rank); train DPO in one process with "
                          "gradient_accumulation_steps > 1, or set batch_rebalance=False for the DPO stage")


def _dpo_trainer(model: Any, tokenizer: Any, rows: list[dict], *, lora: LoraSpec | None, train: TrainSpec, beta: float,
                 output_dir: Path, callbacks: list[Any]) -> Any:
    """The guarded DPOTrainer: rows tokenised by the guard, our collator (the guard on every batch)."""
    # heavy optional: datasets
    from datasets import Dataset

    # heavy optional: trl
    from trl import DPOConfig

    # heavy optional: trl
    from cleanroom.training.collate import GuardedPreferenceCollator

    return _guarded_trainer_class(packed=train.padding_free)(
        model=model,
        ref_model=None,
        args=DPOConfig(**train.trainer_kwargs(str(output_dir), has_eval=False), beta=float(beta),
                       precompute_ref_log_probs=train.precompute_ref_log_probs),
        data_collator=GuardedPreferenceCollator(tokenizer, max_length=train.max_length, where="dpo batch",
                                                pad_to_multiple_of=train.pad_to_multiple_of),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora.to_peft() if lora is not None else None,
        callbacks=callbacks,
    )


def check_frozen_reference(model: Any) -> None:
    """A model that arrives with its adapter attached trains it in place, so its reference must be TRL's frozen copy:
    a ``ref`` adapter, not trainable, equal to ``default`` before the first step. Anything else (no copy: the
    reference would be the base with adapters disabled; a trainable or different copy) is a GateError — step 0
    alone cannot tell a copy taken of the right weights from a reference that follows the policy."""
    import torch  # heavy optional: torch

    if "ref" not in getattr(model, "peft_config", {}):
        raise GateError("DPO: the model arrived with its adapter attached but the trainer made no frozen 'ref' copy "
                        "of it, so the reference would not be the policy it starts from; pass a model without an "
                        "adapter (a fresh LoRA is attached) or use backend=peft")
    params = dict(model.named_parameters())
    pairs = [(n, params.get(n.replace(".default.", ".ref."))) for n in params if "lora_" in n and ".default." in n]
    # compared in the trained adapter's dtype: TRL casts the trainable adapter of a quantized model to bf16 after
    # taking the copy, so the starting policy is the copy as the adapter now holds it
    bad = [n for n, ref in pairs if ref is None or ref.requires_grad or not torch.equal(ref.to(params[n].dtype), params[n])]
    if not pairs or bad:
        raise GateError(f"DPO: the frozen reference adapter 'ref' is not a frozen copy of the trained one "
                        f"({len(bad)} of {len(pairs)} LoRA tensors missing, trainable or different, e.g. {bad[:2]}); "
                        "the reference would not be the starting policy — use backend=peft")


def _step0(trainer: Any, output_dir: Path, checkpoint: str | None, step0_atol: float,
           setup: dict[str, Any], *, packed: bool = False) -> tuple[float, float]:
    """Step-0 loss and margin: measured and checked on a fresh start (written by rank 0, with ``setup``: the
    backend and whether the adapter trains in place), reloaded on resume, where ``setup`` must be the same: a
    checkpoint of a fresh adapter over a merged SFT model resumed as one trained in place (or on the other backend)
    would train another policy than the one recorded. With ``packed`` the measurement must have run packed."""

    step0_file = output_dir / "step0.json"  # measured before the first update; a resumed run reloads it
    if checkpoint is None:
        before = packed_forward.counts(packed_model(trainer))
        step0_loss, step0_margin = measure_step0(trainer)
        if packed:  # before any step is paid for
            packed_forward.require_packed(packed_model(trainer), before, "in the step-0 measurement")
        if abs(step0_loss - math.log(2)) > step0_atol or abs(step0_margin) > step0_atol:
            raise GateError(
                f"DPO step 0: loss {step0_loss:.6f} (expected ln 2 = {math.log(2):.6f}) and reward margin "
                f"{step0_margin:.6f} (expected 0) differ by more than {step0_atol}: the reference is not the "
                "policy being trained — pass the SFT model itself (merged or with its adapter) as `model`"
            )
        payload = pretty_json({"loss": step0_loss, "margin": step0_margin, "atol": step0_atol, **setup})
        output_dir.mkdir(parents=True, exist_ok=True)
        distributed.on_main(distributed.world(), lambda: atomic_write_bytes(step0_file, payload))
        trainer.data_collator.tokens_seen = 0  # count only the batches trained on
        return step0_loss, step0_margin
    if step0_file.is_file():
        step0 = json.loads(step0_file.read_text())
        # a step0.json from before the setup was recorded: DPO then always trained on peft
        was = {"backend": step0.get("backend", "peft"), "in_place": step0.get("in_place", setup["in_place"])}
        if was != setup:
            raise ConfigError(
                f"DPO resume from {checkpoint}: its checkpoints are of {_setup_words(was)} but this run would train "
                f"{_setup_words(setup)}; set the backend it ran with (backend={was['backend']}) or delete {output_dir} "
                "to restart DPO from step 0")
        return step0["loss"], step0["margin"]
    raise InputError(
        f"DPO resume from {checkpoint}: {step0_file} is missing, so the step-0 check (loss = ln 2) cannot be "
        f"reported; delete {output_dir} to restart DPO from step 0"
    )


__all__ = ["STEP0_TOLERANCE", "check_frozen_reference", "measure_step0", "render_pairs", "train_dpo"]

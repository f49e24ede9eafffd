"""The per-device micro-batch chosen by the memory model for a GPU budget, the global batch kept.

With ``TrainSpec.micro_batch_budget_gib`` set, the per-device batch ``B = batch_size x
gradient_accumulation_steps`` is split into ``B / m`` accumulated micro-batches of ``m`` rows, ``m`` the
largest divisor of ``B`` whose estimated peak (:func:`cleanroom.memory.estimate_peak_memory`, or the DPO
form, at ``max_length`` tokens a row) fits the budget. The optimizer still steps once per ``B`` rows, and
the Trainer averages the accumulated losses over the whole of ``B`` (SFT counts the supervised tokens of all
micro-batches; DPO's per-pair mean over equal micro-batches is the mean over ``B``), so the loss curve is
the fixed batch's up to summation order; only the memory and the speed change.
"""

from __future__ import annotations

from typing import Any

from cleanroom import memory
from cleanroom.errors import ConfigError
from cleanroom.spec import replace
from cleanroom.training import rebalance
from cleanroom.training.specs import LoraSpec, TrainSpec

#: The memory model is within 10% of every peak measured on the H200, and below it on the fp32-upcast path
#: (:mod:`cleanroom.memory`'s calibration table); a micro-batch is chosen only if its estimate with this margin
#: on the allocated part (the CUDA context is a constant) fits the budget.
MARGIN = 0.10


def planned_bytes(estimate: memory.MemoryEstimate) -> int:
    """What a micro-batch is planned to need: its estimated allocation plus :data:`MARGIN`, and the CUDA context."""
    return int(estimate.allocated_bytes * (1 + MARGIN)) + int(estimate.parts.get("cuda_context", 0))


def stage_estimate(train: TrainSpec, arch: Any, quantization: str | None, lora: LoraSpec, *, dpo: bool,
                   batch_size: int | None = None) -> memory.MemoryEstimate:
    """The memory model's peak for a stage trained with ``train`` and ``lora`` (at ``batch_size`` rows a micro-batch,
    ``train.batch_size`` by default): the one call training's choice and preflight's estimate share."""
    estimate = memory.estimate_dpo_peak_memory if dpo else memory.estimate_peak_memory
    rows = batch_size or train.batch_size
    if batch_size is None and train.batch_rebalance:  # variable micro-batches: size the largest one possible
        rows = rebalance.worst_case_rows(train.batch_size, train.gradient_accumulation_steps)
    return estimate(arch, quantization=quantization or "bf16", lora_r=lora.r, lora_targets=lora.targets,
                    batch_size=rows, seq_len=train.padded_length,
                    gradient_checkpointing=train.gradient_checkpointing, kbit_fp32_upcast=train.kbit_fp32_upcast)


def _quantization(model: Any) -> str:
    if getattr(model, "is_loaded_in_4bit", False):
        return "nf4"
    return "int8" if getattr(model, "is_loaded_in_8bit", False) else "bf16"


def plan_micro_batch(train: TrainSpec, model: Any, lora: LoraSpec, *, dpo: bool) -> tuple[TrainSpec, dict[str, Any]]:
    """``train`` with the micro-batch and accumulation the memory model picks for ``model``, and the record of the
    choice (:func:`choose_micro_batch` on the model's architecture and quantization)."""
    if train.micro_batch_budget_gib is None:
        return choose_micro_batch(train, None, None, lora, dpo=dpo)
    return choose_micro_batch(train, memory.arch_from_config(model.config.to_dict()), _quantization(model), lora,
                              dpo=dpo)


def choose_micro_batch(train: TrainSpec, arch: Any, quantization: str | None, lora: LoraSpec, *,
                       dpo: bool) -> tuple[TrainSpec, dict[str, Any]]:
    """``train`` with the micro-batch and accumulation the memory model picks, and the record of the choice.

    Unchanged (record ``{"on": False}``) when ``train.micro_batch_budget_gib`` is None. A budget that not even
    one row fits is a ConfigError naming the estimate. Training (:func:`plan_micro_batch`) and preflight's memory
    estimate (``cleanroom.pipeline.estimates``) both call it, so preflight sizes the micro-batch that will run.
    """
    if train.micro_batch_budget_gib is None:
        return train, {"on": False, "reason": "default: batch_size as given"}
    per_device = train.batch_size * train.gradient_accumulation_steps
    budget = int(train.micro_batch_budget_gib * 2**30)

    def peak(m: int) -> int:
        return planned_bytes(stage_estimate(train, arch, quantization, lora, dpo=dpo, batch_size=m))

    fitting = [m for m in range(1, per_device + 1) if per_device % m == 0 and peak(m) <= budget]
    if not fitting:
        raise ConfigError(
            f"TrainSpec.micro_batch_budget_gib = {train.micro_batch_budget_gib}: even one row of {train.padded_length} "
            f"tokens is estimated at {peak(1) / 2**30:.2f} GiB with the {MARGIN:.0%} margin ({'DPO' if dpo else 'SFT'}); raise the budget, lower "
            "max_length, or unset micro_batch_budget_gib"
        )
    m = fitting[-1]
    record = {"on": True, "micro_batch": m, "accumulation": per_device // m, "per_device_batch": per_device,
              "estimate_gib": round(peak(m) / 2**30, 3), "budget_gib": train.micro_batch_budget_gib,
              "margin": MARGIN,
              "reason": f"chosen: the largest divisor of the per-device batch {per_device} whose estimated peak, with a "
                        f"{MARGIN:.0%} margin, fits {train.micro_batch_budget_gib} GiB (cleanroom.memory); the global "
                        "batch is unchanged"}
    return replace(train, batch_size=m, gradient_accumulation_steps=per_device // m), record


__all__ = ["MARGIN", "choose_micro_batch", "plan_micro_batch", "planned_bytes", "stage_estimate"]

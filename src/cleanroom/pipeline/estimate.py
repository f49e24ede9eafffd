"""The memory, disk and cost estimate of a Stage 1 run from its config alone (``cleanroom run --estimate``).

No weights are needed: the architecture comes from the config (:func:`~cleanroom.pipeline.preflight.model_arch`),
and every figure is the one preflight checks, computed by the same functions, so the estimate is what the run's
own preflight will find. Before estimating, the inputs the run will read that are cheap to check are checked
with preflight's own functions, so a config the run would refuse is refused here with the same message: a Hub
model without a pinned commit, and the user's prompt files (``data.eval_prompts``, ``data.sft_pool``: present,
matching their pinned sha256, parseable as prompt records).
"""

from __future__ import annotations

from typing import Any

from cleanroom import memory
from cleanroom.config import RunSpec
from cleanroom.errors import ConfigError
from cleanroom.pipeline.preflight import (
    checkpoint_disk,
    memory_estimates,
    model_arch,
    project_stage1,
    read_prompt_file,
    revision_problem,
    user_prompt_files,
)


def estimate_stage1(spec: RunSpec) -> dict[str, Any]:
    """What ``--estimate`` prints: :func:`estimate`, refused where preflight would refuse the run — with
    :class:`ConfigError` for a Hub model without a pinned commit, and with preflight's own error for a prompt file
    the config names that is missing, changed against its pin or malformed (an estimate of a run that cannot
    start would be a pass it has not earned)."""
    problem = revision_problem(spec.model)
    if problem is not None:
        raise ConfigError(problem)
    for name, path in user_prompt_files(spec.data).items():
        read_prompt_file(spec.data, name, path)
    return estimate(spec)


def estimate(spec: RunSpec) -> dict[str, Any]:
    """Memory, disk and cost estimate of the run *spec* describes, from the config alone (no weights needed)."""
    arch = model_arch(spec.model)
    estimates = memory_estimates(spec, arch)
    est, dpo = estimates["sft"], estimates["dpo"]
    common: dict[str, Any] = dict(quantization=spec.model.quantization or "bf16", lora_r=spec.sft.lora.r,
                                  lora_targets=spec.sft.lora.targets, seq_len=spec.sft.train.padded_length,
                                  gradient_checkpointing=spec.sft.train.gradient_checkpointing,
                                  kbit_fp32_upcast=spec.sft.train.kbit_fp32_upcast)
    budget = spec.budget.gpu_memory_gb * 1e9
    best = memory.max_batch_that_fits(arch, int(budget), **common)
    disk = checkpoint_disk(spec, arch)
    return {
        "memory": {"estimate_gb": round(est.total_bytes / 1e9, 2), "device_gb": spec.budget.gpu_memory_gb,
                   "fits": max(est.total_bytes, dpo.total_bytes) <= budget, "max_batch_size": best,
                   "parts_gb": {k: round(v / 1e9, 3) for k, v in est.parts.items()},
                   "dpo_estimate_gb": round(dpo.total_bytes / 1e9, 2),
                   "dpo_parts_gb": {k: round(v / 1e9, 3) for k, v in dpo.parts.items()}},
        "disk": {"checkpoints_gb": round(disk["total_bytes"] / 1e9, 2),
                 "need_gb": round(max(disk["total_bytes"] / 1e9, spec.preflight.min_free_disk_gb), 2),
                 "sft_checkpoints": disk["sft"]["checkpoints"], "dpo_checkpoints": disk["dpo"]["checkpoints"]},
        "cost": project_stage1(spec, device="cpu" if spec.device == "cpu" else "cuda",
                               params_b=sum(memory.count_params(arch).values()) / 1e9),
    }

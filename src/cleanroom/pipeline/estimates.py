"""What a run will need before it starts: the model's size, GPU memory, checkpoint disk, hours and dollars.

Estimators only, from the resolved spec and the model's architecture; preflight
(:mod:`cleanroom.pipeline.preflight`) compares their figures with the device and the budget, and
``cleanroom run --estimate`` prints them. The arithmetic lives in :mod:`cleanroom.memory` and
:mod:`cleanroom.cost`; here a spec's stages are mapped onto it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cleanroom import cost, memory
from cleanroom.backend import resolve_stage
from cleanroom.errors import ConfigError
from cleanroom.loader import read_model_config
from cleanroom.memory import arch_for
from cleanroom.pipeline.common import resolve_model
from cleanroom.training.micro_batch import choose_micro_batch, stage_estimate
from cleanroom.training.specs import lever_settings

# Nominal throughputs (tokens/s) used until measured ones are passed in (the GPU gate measures them on
# the real device: gate-report.json). Per billion parameters they scale ~1/params: rate = k / params_b.
# CPU figures are for the tiny profile on 2 cores; CUDA figures are for nf4 QLoRA on one H100.
NOMINAL_RATES = {
    "cpu": {"train_k": 60.0, "gen_k": 40.0},
    "cuda": {"train_k": 40_000.0, "gen_k": 8_000.0},
}


def model_arch(model: Any) -> dict[str, Any]:
    """The configured model's architecture (:func:`cleanroom.memory.arch_from_config`), without its weights.

    ``random_init`` is that Qwen2.5 size; a fixture, a local directory or a Hub id in the Hugging Face
    cache is read from its ``config.json`` (a GGUF model from the file's metadata); a Hub id not in the
    cache falls back to its name when it is a known Qwen2.5 size. Anything else is a ConfigError: the
    parameter count is never assumed.
    """
    if model.random_init:
        return memory.arch_from_config(arch_for(model.random_init))
    try:
        directory, gguf = resolve_model(model, Path(".cleanroom-unused"))  # the work dir is for random_init only
    except ConfigError as exc:  # a Hub id that is not in the cache
        try:
            return memory.arch_from_config(arch_for(model.path))
        except ConfigError:
            raise ConfigError(f"cannot size model.path {model.path!r}: no config.json to read ({exc}) and the name "
                              "is not a known Qwen2.5 size; pass model.path=/dir/with/config.json") from None

    try:
        return memory.arch_from_config(read_model_config(directory, gguf))
    except ConfigError as exc:
        raise ConfigError(f"cannot size model.path {model.path!r}: {exc}") from None


def project_stage1(spec: Any, *, device: str, params_b: float | None = None,
                   measured: dict[str, Any] | None = None, backend: str | None = None,
                   dpo_backend: str | None = None) -> dict[str, Any]:
    """Projected hours and dollars of the whole run (:func:`cleanroom.cost.stage1_phases`).

    ``measured`` may give ``train_tokens_per_s`` / ``gen_tokens_per_s`` at this model's size (and a
    ``source``); otherwise ``budget.gate_report``'s rates scaled to this size
    (:meth:`cleanroom.cost.GateRates.scaled_to`); otherwise nominal rates scaled by model size. The
    result's ``rates`` says which. ``params_b`` defaults to the model's own (:func:`model_arch`).
    ``backend`` and ``dpo_backend`` are the backends the SFT and the DPO stage will use (preflight's resolved
    choices; default: ``spec.backend`` resolved here for each stage). The gate's training rate is peft's: a
    stage on ``unsloth`` is priced at check 10's measured Unsloth/peft ratio for that stage
    (``GateRates.unsloth_speedup`` for SFT, ``unsloth_dpo_speedup`` for DPO, whose peft rate is the training
    rate times ``cost.DPO_THROUGHPUT_FACTOR``), or at peft's with the result saying that ratio was not measured.
    """
    if params_b is None:
        params_b = sum(memory.count_params(model_arch(spec.model)).values()) / 1e9
    params_b = max(params_b, 0.001)
    if backend is None:
        backend = resolve_stage(spec, device=device, stage="sft").backend
    if dpo_backend is None:
        dpo_backend = resolve_stage(spec, device=device, stage="dpo").backend
    speedup = {"sft": 1.0, "dpo": 1.0}
    if measured is None and spec.budget.gate_report:
        measured, speedup = _gate_rates(spec, params_b, sft=backend, dpo=dpo_backend)
    rates = NOMINAL_RATES["cuda" if device == "cuda" else "cpu"]
    train = (measured or {}).get("train_tokens_per_s") or rates["train_k"] / params_b
    gen = (measured or {}).get("gen_tokens_per_s") or rates["gen_k"] / params_b
    d, p = spec.data, spec.pairs
    phases = cost.stage1_phases(
        train_tokens_per_s=train * speedup["sft"], gen_tokens_per_s=gen,
        dpo_tokens_per_s=train * cost.DPO_THROUGHPUT_FACTOR * speedup["dpo"], n_eval_prompts=d.n_eval,
        eval_new_tokens=spec.eval.generation.max_new_tokens, n_pool_prompts=d.n_sft if d.teacher == "none" else 0,
        sft_new_tokens=spec.sft_generation.max_new_tokens,
        n_sft_examples=d.n_sft, sft_tokens_per_example=min(spec.sft.train.max_length, 700),
        sft_epochs=spec.sft.train.num_epochs, n_pair_prompts=p.n_instructions,
        pair_samples_per_prompt=p.samples_per_instruction + (1 if p.rewriter == "model" else 0),
        pair_new_tokens=p.generation.max_new_tokens, n_pairs=p.n_instructions,
        pair_tokens_per_side=min(spec.dpo.train.max_length, 700), dpo_epochs=spec.dpo.train.num_epochs,
    )
    proj = cost.project_cost(phases, price_per_hour=max(spec.budget.price_per_hour, 1e-9), overhead_s=600.0)
    b = spec.budget
    return {
        "hours": round(proj.hours, 4), "cost_usd": round(proj.hours * b.price_per_hour, 2),
        "price_per_hour": b.price_per_hour, "params_b": round(params_b, 4),
        "train_tokens_per_s": round(train, 1), "gen_tokens_per_s": round(gen, 1), "sft_backend": backend,
        "sft_tokens_per_s": round(train * speedup["sft"], 1), "dpo_backend": dpo_backend,
        "dpo_tokens_per_s": round(train * cost.DPO_THROUGHPUT_FACTOR * speedup["dpo"], 1),
        "rates": (measured or {}).get("source", "measured") if measured
        else "nominal (set budget.gate_report or pass --gate-report to use the GPU gate's measured rates)",
        "phase_hours": {k: round(v, 4) for k, v in proj.phase_hours.items()},
        "max_cost_usd": b.max_cost_usd, "max_hours": b.max_hours,
        "within_budget": proj.within(max_cost_usd=b.max_cost_usd, max_hours=b.max_hours),
    }


def _gate_rates(spec: Any, params_b: float, **backends: str) -> tuple[dict[str, Any], dict[str, float]]:
    """``budget.gate_report``'s rates at ``params_b`` with a source that says how they relate to this run, and per
    training stage (``backends``: stage -> backend) the factor on peft's rate: check 10's Unsloth/peft ratio for a
    stage on unsloth that the gate measured, else 1.0 (and the source says an unsloth stage's ratio is missing)."""
    gate = cost.read_gate_rates(spec.budget.gate_report)
    note = lever_note(gate.levers, spec.sft.train)
    ratios = {"sft": gate.unsloth_speedup, "dpo": gate.unsloth_dpo_speedup}
    speedup = dict.fromkeys(backends, 1.0)
    for stage, backend in backends.items():
        ratio, name = ratios[stage], stage.upper()
        if backend == "unsloth" and ratio is not None:
            speedup[stage] = ratio
            note += f"; {name} on unsloth at {ratio:.2f}x peft's rate (gate check 10, steady tokens/s)"
        elif backend == "unsloth":
            note += f"; {name} runs on unsloth, whose rate the gate did not measure (check 10): projected at peft's"
    return {**gate.scaled_to(params_b),
            "source": f"measured by the GPU gate on {gate.device} (verdict {gate.verdict}; {gate.path}), "
            f"scaled from {gate.params_b:.2f}B to {params_b:.2f}B{note}"}, speedup


def lever_note(measured: dict[str, Any] | None, train: Any) -> str:
    """How the gate's training rate relates to this run's SFT path (the TrainSpec speed levers): empty when
    they match, else the difference, so a projection never silently uses another configuration's rate."""
    if measured is None:
        return "; the report does not say which training levers its rate was measured with (a gate before they " \
               "were recorded): rerun the gate to project this run's own path"
    # this run's settings, keyed as TrainResult.levers records them (every TrainSpec lever and the micro-batch)
    # (a lever that takes a number, pad_to_multiple_of, compares by its value: buckets of 64 are not 256)
    mine = lever_settings(train.levers()) | {"micro_batch": train.micro_batch_budget_gib is not None}
    # A lever the report does not record came after that gate's code: the gate ran without it, so it counts as off
    # there (and is named "not recorded" when this run sets it); a key this run lacks is one it cannot compare.
    differ = {k: (measured.get(k, False), mine.get(k, "not set here"))
              for k in sorted(set(measured) | set(mine)) if measured.get(k, False) != mine.get(k, "not set here")}
    if not differ:
        return ""
    what = ", ".join(f"{k}={here} (gate: {theirs if k in measured else 'not recorded, so off'})"
                     for k, (theirs, here) in differ.items())
    return f"; this run's SFT sets {what}: its training rate was not measured, rerun the gate with the same levers"


def projection_line(projection: dict[str, Any]) -> str:
    """One line for the run log: hours, dollars, the budget, and which rates were used."""
    limits = [f"${v}" if k == "max_cost_usd" else f"{v} h" for k in ("max_cost_usd", "max_hours")
              if (v := projection.get(k)) is not None]
    budget = f" (budget {', '.join(limits)}{'' if projection['within_budget'] else ': EXCEEDED'})" if limits else ""
    return (f"projected {projection['hours']:.2f} h, ${projection['cost_usd']:.2f} at ${projection['price_per_hour']}/h"
            f"{budget}; {projection['train_tokens_per_s']:g} train / {projection['gen_tokens_per_s']:g} generation "
            f"tokens/s, {projection['rates']}")


def memory_estimates(spec: Any, arch: Any) -> dict[str, Any]:
    """Peak GPU memory of the SFT and the DPO stage (:mod:`cleanroom.memory`), each with its own LoRA and the
    micro-batch that will run in one process (``micro_batch_budget_gib`` splits the batch as training will:
    :func:`cleanroom.training.micro_batch.choose_micro_batch`). Under a launcher training first divides the batch
    over the ranks (``distributed.divide_batch``), so there this is the larger, one-process figure."""
    out = {}
    for name, stage in (("sft", spec.sft), ("dpo", spec.dpo)):
        q, dpo = spec.model.quantization, name == "dpo"
        train, _ = choose_micro_batch(stage.train, arch, q, stage.lora, dpo=dpo)
        out[name] = stage_estimate(train, arch, q, stage.lora, dpo=dpo)
    return out


def checkpoint_disk(spec: Any, arch: Any) -> dict[str, Any]:
    """Disk bytes the SFT and DPO checkpoints and adapters need, at most (:func:`cleanroom.memory.checkpoint_bytes`).

    Per stage: ``steps = max_steps`` or ``ceil(examples / (batch * grad_accum)) * epochs`` (examples:
    ``data.n_sft`` for SFT, ``pairs.n_instructions`` for DPO, upper bounds); the Trainer writes a
    checkpoint every ``save_steps`` and deletes the oldest beyond ``save_total_limit`` only *after* the
    next one is written, so at most ``min(ceil(steps / save_steps), save_total_limit + 1)`` exist at once
    (all of them without a limit). Plus two copies of the final adapter (the trainer's save and the
    stage's copy in the run directory). SFT's checkpoints stay on disk while DPO writes its own, so the
    stages add up. No merged model is written (the merge stage proves equivalence in memory).
    """
    need: dict[str, Any] = {}
    for name, stage, examples in (("sft", spec.sft, spec.data.n_sft), ("dpo", spec.dpo, spec.pairs.n_instructions)):
        t = stage.train
        steps = t.max_steps if t.max_steps > 0 else math.ceil(
            math.ceil(examples / (t.batch_size * t.gradient_accumulation_steps)) * t.num_epochs)
        saves = max(1, math.ceil(steps / t.save_steps))
        kept = saves if t.save_total_limit is None else min(saves, t.save_total_limit + 1)
        n_lora = memory.lora_param_count(arch, lora_r=stage.lora.r, lora_targets=stage.lora.targets)
        per = memory.checkpoint_bytes(n_lora, quantization=spec.model.quantization, optim=t.optim)
        adapter = n_lora * (2 if spec.model.quantization else 4)
        need[name] = {"checkpoints": kept, "checkpoint_bytes": per, "bytes": kept * per + 2 * adapter}
    need["total_bytes"] = sum(v["bytes"] for v in need.values())
    return need

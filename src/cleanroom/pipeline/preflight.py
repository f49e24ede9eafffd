"""Preflight: every check that can fail cheaply runs before anything costly.

Checks, in order: the eval set and SFT pool (embedded generator or the user's files, pinned by
sha256 when given) and their overlap; a Hub model pinned to a commit; the backend (``auto``
resolved and recorded); base-model decision and sentinels (the clean loader); token lengths
against the training max length (no example may lose its EOS to truncation); config sanity (LoRA
scale α/r and learning rates inside the usual ranges, or a recorded reason); free disk against the
SFT and DPO checkpoints (:func:`checkpoint_disk`); the larger of the SFT and DPO GPU memory
estimates against the device; the projected time and cost of the whole run against
``budget.max_cost_usd`` and ``budget.max_hours`` (printed, with the rates it used). A failed check
aborts the run with one message per failure.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cleanroom import cost, memory
from cleanroom.artifacts import atomic_write_bytes, pretty_json
from cleanroom.backend import resolve_backend
from cleanroom.errors import CleanroomError, ConfigError, MissingFileError
from cleanroom.ifeval import file_sha256, read_prompts
from cleanroom.ifeval.evalset import check_overlap, make_eval_set
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST, few_shot_prompt, zero_shot_prompt
from cleanroom.ifeval.teacher import teacher_response
from cleanroom.loader import read_model_config
from cleanroom.memory import arch_for
from cleanroom.pipeline.common import FIXTURE_MODELS, Context, capture, load_model, resolve_model

# Usual ranges (outside them a run needs preflight.*_reason). LoRA scale α/r: 0.5–2 is common
# practice (the seed project's r=64, α=16 is 0.25). Learning rates: LoRA SFT 1e-5–5e-4, DPO 1e-7–1e-5.
LORA_SCALE_RANGE = (0.5, 2.0)
SFT_LR_RANGE = (1e-5, 5e-4)
DPO_LR_RANGE = (1e-7, 1e-5)


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
                   measured: dict[str, Any] | None = None) -> dict[str, Any]:
    """Projected hours and dollars of the whole run (:func:`cleanroom.cost.stage1_phases`).

    ``measured`` may give ``train_tokens_per_s`` / ``gen_tokens_per_s`` at this model's size (and a
    ``source``); otherwise ``budget.gate_report``'s rates scaled to this size
    (:meth:`cleanroom.cost.GateRates.scaled_to`); otherwise nominal rates scaled by model size. The
    result's ``rates`` says which. ``params_b`` defaults to the model's own (:func:`model_arch`).
    """
    if params_b is None:
        params_b = sum(memory.count_params(model_arch(spec.model)).values()) / 1e9
    params_b = max(params_b, 0.001)
    if measured is None and spec.budget.gate_report:
        gate = cost.read_gate_rates(spec.budget.gate_report)
        measured = {**gate.scaled_to(params_b),
                    "source": f"measured by the GPU gate on {gate.device} (verdict {gate.verdict}; {gate.path}), "
                    f"scaled from {gate.params_b:.2f}B to {params_b:.2f}B"}
    rates = NOMINAL_RATES["cuda" if device == "cuda" else "cpu"]
    train = (measured or {}).get("train_tokens_per_s") or rates["train_k"] / params_b
    gen = (measured or {}).get("gen_tokens_per_s") or rates["gen_k"] / params_b
    d, p = spec.data, spec.pairs
    phases = cost.stage1_phases(
        train_tokens_per_s=train, gen_tokens_per_s=gen, n_eval_prompts=d.n_eval,
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
        "train_tokens_per_s": round(train, 1), "gen_tokens_per_s": round(gen, 1),
        "rates": (measured or {}).get("source", "measured") if measured
        else "nominal (set budget.gate_report or pass --gate-report to use the GPU gate's measured rates)",
        "phase_hours": {k: round(v, 4) for k, v in proj.phase_hours.items()},
        "max_cost_usd": b.max_cost_usd, "max_hours": b.max_hours,
        "within_budget": proj.within(max_cost_usd=b.max_cost_usd, max_hours=b.max_hours),
    }


def projection_line(projection: dict[str, Any]) -> str:
    """One line for the run log: hours, dollars, the budget, and which rates were used."""
    limits = [f"${v}" if k == "max_cost_usd" else f"{v} h" for k in ("max_cost_usd", "max_hours")
              if (v := projection.get(k)) is not None]
    budget = f" (budget {', '.join(limits)}{'' if projection['within_budget'] else ': EXCEEDED'})" if limits else ""
    return (f"projected {projection['hours']:.2f} h, ${projection['cost_usd']:.2f} at ${projection['price_per_hour']}/h"
            f"{budget}; {projection['train_tokens_per_s']:g} train / {projection['gen_tokens_per_s']:g} generation "
            f"tokens/s, {projection['rates']}")


def revision_problem(model: Any) -> str | None:
    """Why the model is not pinned, or None: a Hub id must name a 40-hex commit in ``model.revision``.

    A branch or tag (``main``) moves: a re-run could train a different snapshot under the same config
    hash. Fixtures, ``random_init`` architectures and local directories carry no revision.
    """
    if model.random_init or model.path in FIXTURE_MODELS or Path(model.path).expanduser().is_dir():
        return None
    if model.revision and re.fullmatch(r"[0-9a-f]{40}", model.revision):
        return None
    return (f"model.path {model.path!r} is a Hugging Face Hub id and model.revision is {model.revision!r}, not a "
            "commit: pin the snapshot you downloaded with model.revision=<commit> (the 40-hex hash in "
            "~/.cache/huggingface/hub/models--ORG--NAME/refs/main), or pass model.path=/local/dir")


def sft_worst_length(spec: Any, pool: list[Any], tokenizer: Any) -> tuple[int, str]:
    """The longest SFT example in tokens, ``prompt + completion + EOS``, and what its completion length is.

    With the programmatic teacher the completions are known before the run: the SFT-data stage draws
    ``teacher_response`` for ``pool[:data.n_sft]`` in order from ``default_rng(seed)``, so the same draw
    here gives each example's exact length (as that stage counts it). A model's answer may run to
    ``sft_generation.max_new_tokens``, so then the bound is the longest prompt plus that.
    """
    if spec.data.teacher == "programmatic":
        rng = np.random.default_rng(spec.seed)
        worst = max(len(tokenizer(zero_shot_prompt(r.prompt) + teacher_response(r, rng))["input_ids"]) + 1
                    for r in pool[: spec.data.n_sft])
        return worst, "the programmatic teacher's completions (exact)"
    longest = max(len(tokenizer(zero_shot_prompt(r.prompt))["input_ids"]) for r in pool)
    return longest + spec.sft_generation.max_new_tokens + 1, "longest prompt + sft_generation.max_new_tokens + EOS"


def memory_estimates(spec: Any, arch: Any) -> dict[str, Any]:
    """Peak GPU memory of the SFT and the DPO stage (:mod:`cleanroom.memory`), each with its own LoRA and batch."""
    return {
        name: fn(arch, quantization=spec.model.quantization or "bf16", lora_r=stage.lora.r,
                 lora_targets=stage.lora.targets, batch_size=stage.train.batch_size,
                 seq_len=stage.train.max_length, gradient_checkpointing=stage.train.gradient_checkpointing)
        for name, stage, fn in (("sft", spec.sft, memory.estimate_peak_memory),
                                ("dpo", spec.dpo, memory.estimate_dpo_peak_memory))
    }


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


def _sanity(ctx: Context) -> list[dict[str, Any]]:
    spec, pre = ctx.spec, ctx.spec.preflight
    out = []
    for name, lora in (("sft", spec.sft.lora), ("dpo", spec.dpo.lora)):
        lo, hi = LORA_SCALE_RANGE
        ok = lo <= lora.scale <= hi
        out.append({
            "check": f"{name}_lora_scale",
            "value": lora.scale,
            "range": [lo, hi],
            "passed": ok or bool(pre.lora_scale_reason),
            "reason": None if ok else pre.lora_scale_reason,
            "fix": None if ok else f"set {name}.lora.alpha so alpha/r is in [{lo}, {hi}] or give "
            "preflight.lora_scale_reason",
        })
    for name, lr, (lo, hi) in (("sft", spec.sft.train.learning_rate, SFT_LR_RANGE),
                               ("dpo", spec.dpo.train.learning_rate, DPO_LR_RANGE)):
        ok = lo <= lr <= hi
        out.append({
            "check": f"{name}_learning_rate",
            "value": lr,
            "range": [lo, hi],
            "passed": ok or bool(pre.learning_rate_reason),
            "reason": None if ok else pre.learning_rate_reason,
            "fix": None if ok else f"set {name}.train.learning_rate in [{lo}, {hi}] or give preflight.learning_rate_reason",
        })
    return out


def _prompt_files(ctx: Context, work: Path) -> tuple[Path, Path, dict[str, Any]]:
    """The eval prompts and SFT pool: the user's (sha256-pinned if given) or the embedded generator's."""
    d = ctx.spec.data
    info: dict[str, Any] = {}
    if d.eval_prompts is None or d.sft_pool is None:
        info = make_eval_set(work, seed=d.generator_seed, n_eval=d.n_eval, n_pool=max(d.n_sft + ctx.spec.pairs.n_instructions, 1))
    paths = []
    for name, user, pinned in (("eval_prompts", d.eval_prompts, d.eval_prompts_sha256),
                               ("sft_pool", d.sft_pool, d.sft_pool_sha256)):
        path = Path(user).expanduser() if user else work / f"{name}.jsonl"
        if not path.is_file():
            raise MissingFileError(f"data.{name}: {path} does not exist")
        digest = file_sha256(path)
        if pinned and digest != pinned:
            raise ConfigError(f"data.{name}: {path} has sha256 {digest}, the config pins {pinned}; the file changed")
        info[f"{name}_sha256"] = digest
        paths.append(path)
    return paths[0], paths[1], info


def run_preflight(ctx: Context) -> dict[str, Any]:
    """Run every check; write ``preflight/`` (prompt records + results.json); raise on failure."""
    spec = ctx.spec
    work = ctx.run.path / ".work" / "preflight"
    work.mkdir(parents=True, exist_ok=True)
    eval_path, pool_path, data_info = _prompt_files(ctx, work)
    eval_set, pool = read_prompts(eval_path), read_prompts(pool_path)
    checks: list[dict[str, Any]] = []

    def check(name: str, fn: Any) -> Any:
        try:
            value = fn()
        except CleanroomError as exc:
            checks.append({"check": name, "passed": False, "error": f"{type(exc).__name__}: {exc}"})
            return None
        return value

    # eval / train disjointness
    if check("overlap", lambda: check_overlap(eval_set, pool, n=13)) is None and not checks:
        checks.append({"check": "overlap", "passed": True, "value": "no shared prompt, no shared 13-gram"})
    if len(eval_set) < spec.eval.min_n and not spec.eval.override_reason:
        checks.append({"check": "eval_size", "passed": False, "value": len(eval_set),
                       "error": f"{len(eval_set)} eval prompts < eval.min_n {spec.eval.min_n}"})
    else:
        checks.append({"check": "eval_size", "passed": True, "value": len(eval_set)})

    problem = revision_problem(spec.model)
    checks.append({"check": "model_revision", "passed": problem is None, "value": spec.model.revision, "fix": problem})
    choice = resolve_backend(spec.backend, device=ctx.device, quantization=spec.model.quantization)
    checks.append({"check": "backend", "passed": True, "value": choice._asdict()})
    ctx.say(f"preflight: backend {choice.backend} ({choice.reason})")

    # base model decision + sentinels (the loader raises on an instruct model or a failed sentinel)
    loaded = check("base_model", lambda: load_model(ctx, probe=True))
    loader_prov: dict[str, Any] | None = None
    if loaded is not None:
        model, tokenizer, loader_prov = loaded
        checks.append({"check": "base_model", "passed": True, "value": loader_prov.get("probe"),
                       "allow_instruct_reason": spec.model.allow_instruct_reason})
        checks.append({"check": "sentinels", "passed": True, "value": loader_prov.get("sentinels")})
        # token lengths: SFT prompt + longest plausible completion + EOS must fit max_length
        sft_lengths = np.array([len(tokenizer(zero_shot_prompt(r.prompt))["input_ids"]) for r in pool])
        eval_lengths = np.array([len(tokenizer(few_shot_prompt(r.prompt))["input_ids"]) for r in eval_set])
        limit = spec.sft.train.max_length
        worst, basis = sft_worst_length(spec, pool, tokenizer)
        max_pos = getattr(model.config, "max_position_embeddings", None)
        eval_worst = int(eval_lengths.max()) + spec.eval.generation.max_new_tokens
        checks.append({
            "check": "token_lengths",
            "passed": worst <= limit and (max_pos is None or eval_worst <= max_pos),
            "value": {"sft_prompt_p50": float(np.median(sft_lengths)), "sft_prompt_max": int(sft_lengths.max()),
                      "eval_prompt_p50": float(np.median(eval_lengths)), "eval_prompt_max": int(eval_lengths.max()),
                      "sft_worst_case": worst, "sft_worst_case_basis": basis, "max_length": limit,
                      "eval_worst_case": eval_worst,
                      "max_position_embeddings": max_pos},
            "fix": None if worst <= limit else f"raise sft.train.max_length above {worst} ({basis}) or lower "
            "sft_generation.max_new_tokens (an example must never lose its EOS to truncation)",
        })
        arch = memory.arch_from_config(model.config.to_dict())
        del model
    else:
        arch = None

    checks.extend(_sanity(ctx))

    free = shutil.disk_usage(ctx.run.path).free / 1e9
    disk = checkpoint_disk(spec, arch) if arch is not None else None
    need_disk = max(spec.preflight.min_free_disk_gb, disk["total_bytes"] / 1e9 if disk else 0.0)
    checks.append({"check": "disk_space", "passed": free >= need_disk,
                   "value": {"free_gb": round(free, 2), "need_gb": round(need_disk, 2),
                             "floor_gb": spec.preflight.min_free_disk_gb, "checkpoints": disk},
                   "fix": f"free at least {need_disk:.1f} GB under {ctx.run.path} (SFT + DPO checkpoints and "
                   "adapters), or lower sft/dpo.train.save_total_limit"})

    if arch is not None:
        estimates = memory_estimates(spec, arch)
        budget_gb = spec.budget.gpu_memory_gb
        if ctx.device == "cuda":
            import torch  # heavy optional: torch

            budget_gb = torch.cuda.get_device_properties(0).total_memory / 1e9
        worst_stage = max(estimates, key=lambda k: estimates[k].total_bytes)
        need_gb = estimates[worst_stage].total_bytes / 1e9
        checks.append({"check": "gpu_memory", "passed": ctx.device != "cuda" or need_gb <= budget_gb,
                       "value": {"estimate_gb": round(need_gb, 3), "peak_stage": worst_stage,
                                 "device_gb": round(budget_gb, 1),
                                 **{f"{k}_estimate_gb": round(e.total_bytes / 1e9, 3) for k, e in estimates.items()},
                                 **{f"{k}_parts_gb": {p: round(v / 1e9, 4) for p, v in e.parts.items()}
                                    for k, e in estimates.items()}},
                       "fix": f"{worst_stage} needs {need_gb:.1f} GB > {budget_gb:.1f} GB: lower {worst_stage}.train."
                       "batch_size or max_length, or enable gradient_checkpointing"})

    params_b = sum(memory.count_params(arch).values()) / 1e9 if arch is not None else None
    projection = check("projected_cost", lambda: project_stage1(spec, device=ctx.device, params_b=params_b))
    if projection is not None:
        ctx.say(f"preflight: {projection_line(projection)}")
        checks.append({"check": "projected_cost", "passed": projection["within_budget"], "value": projection,
                       "fix": f"{projection_line(projection)}: raise budget.max_cost_usd / budget.max_hours or "
                       "shrink the run (data.n_sft, pairs.n_instructions, epochs)"})

    prov = capture(ctx, "preflight", loader=loader_prov,
                   extra={"few_shot_digest": FEW_SHOT_DIGEST, "data": data_info, "backend": choice._asdict()})
    with ctx.run.stage("preflight", provenance=prov, inputs=[eval_path, pool_path]) as st:
        for name, records in (("eval_prompts.jsonl", eval_set), ("sft_pool.jsonl", pool)):
            writer = st.jsonl(name)
            for r in records:
                writer.write(r.to_dict(), record_id=f"{name.split('.')[0]}:{r.key}")
        results = {"checks": checks, "passed": all(c["passed"] for c in checks), "data": data_info}

        if not results["passed"]:
            failed = [c for c in checks if not c["passed"]]
            atomic_write_bytes(ctx.run.path / ".work" / "preflight-failed.json", pretty_json(results))
            lines = "; ".join(f"{c['check']}: {c.get('error') or c.get('fix') or c.get('value')}" for c in failed)
            raise ConfigError(f"preflight failed ({len(failed)} check(s)): {lines}")
        atomic_write_bytes(st.dir / "results.json", pretty_json(results))
    return results

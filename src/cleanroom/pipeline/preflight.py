"""Preflight: every check that can fail cheaply runs before anything costly.

Checks, in order: the eval set and SFT pool (embedded generator or the user's files, pinned by
sha256 when given) and their overlap; a Hub model pinned to a commit; the backend of each training
stage (``auto`` resolved for SFT and for DPO, both recorded); base-model decision and sentinels (the
clean loader); token lengths against the training max length (no example may lose its EOS to truncation); config sanity (LoRA
scale α/r and learning rates inside the usual ranges, or a recorded reason); free disk against the
SFT and DPO checkpoints (:func:`~cleanroom.pipeline.estimates.checkpoint_disk`); the larger of the SFT and DPO GPU memory
estimates against the device; the projected time and cost of the whole run against
``budget.max_cost_usd`` and ``budget.max_hours`` (printed, with the rates it used). A failed check
aborts the run with one message per failure.

The estimators (model size, memory, disk, cost) live in :mod:`cleanroom.pipeline.estimates`; their
names are re-exported here for the callers that import them from preflight.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from cleanroom import distributed, memory
from cleanroom.artifacts import atomic_write_bytes, pretty_json
from cleanroom.backend import STAGES, dpo_lora_problem, resolve_stage, unsloth_ranks_problem
from cleanroom.errors import CleanroomError, ConfigError, MissingFileError
from cleanroom.ifeval import file_sha256, read_prompts
from cleanroom.ifeval.evalset import check_overlap, make_eval_set
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST, few_shot_prompt, zero_shot_prompt
from cleanroom.ifeval.teacher import teacher_response
from cleanroom.pipeline.common import FIXTURE_MODELS, Context, capture, load_model
from cleanroom.pipeline.estimates import (
    NOMINAL_RATES,
    checkpoint_disk,
    memory_estimates,
    model_arch,
    project_stage1,
    projection_line,
)

__all__ = [
    "DPO_LR_RANGE",
    "LORA_SCALE_RANGE",
    "NOMINAL_RATES",
    "SFT_LR_RANGE",
    "checkpoint_disk",
    "memory_estimates",
    "model_arch",
    "project_stage1",
    "projection_line",
    "read_prompt_file",
    "revision_problem",
    "run_preflight",
    "sft_worst_length",
    "user_prompt_files",
]

T = TypeVar("T")

# Usual ranges (outside them a run needs preflight.*_reason). LoRA scale α/r: 0.5–2 is common
# practice (the seed project's r=64, α=16 is 0.25). Learning rates: LoRA SFT 1e-5–5e-4, DPO 1e-7–1e-5.
LORA_SCALE_RANGE = (0.5, 2.0)
SFT_LR_RANGE = (1e-5, 5e-4)
DPO_LR_RANGE = (1e-7, 1e-5)


def revision_problem(model: Any) -> str | None:
    """Why the model is not pinned, or None: a Hub id must name a 40-hex commit in ``model.revision``.

    A branch or tag (``main``) moves: a re-run could train a different snapshot under the same config
    hash. Fixtures, ``random_init`` architectures and local directories carry no revision.
    """
    if model.random_init or model.path in FIXTURE_MODELS or Path(model.path).expanduser().is_dir():
        return None
    if model.revision and re.fullmatch(r"[0-9a-f]{40}", model.revision):
        return None
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", model.path) or model.path.startswith((".", "~")):
        # a Hub id is ORG/NAME; anything else (/abs/dir, ./rel, ~/x, a/b/c) is a local path that is not there
        return (f"model.path {model.path!r} is no local directory (and not a Hugging Face Hub id, ORG/NAME): "
                "fix the path to the folder holding config.json, or name a Hub id pinned with model.revision")
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


#: The prompt files a run reads: ``data.<name>`` (with ``data.<name>_sha256``), else the embedded generator's.
PROMPT_FILES = ("eval_prompts", "sft_pool")


def user_prompt_files(data: Any) -> dict[str, Path]:
    """The prompt files the config names (``data.eval_prompts``, ``data.sft_pool``) as paths; the others come
    from the embedded generator at run time."""
    return {name: Path(getattr(data, name)).expanduser() for name in PROMPT_FILES if getattr(data, name)}


def read_prompt_file(data: Any, name: str, path: Path) -> tuple[list[Any], str]:
    """The prompt records of ``data.<name>`` at *path* and the file's sha256, checked as the run reads them: the
    file exists (MissingFileError), matches ``data.<name>_sha256`` when the config pins one (ConfigError) and
    parses as prompt records (:func:`cleanroom.ifeval.read_prompts`: InputError at the file's line). Preflight
    reads every prompt file through it, and ``run --estimate`` the user's, so both refuse the same file alike."""
    if not path.is_file():
        raise MissingFileError(f"data.{name}: {path} does not exist")
    digest = file_sha256(path)
    pinned = getattr(data, f"{name}_sha256")
    if pinned and digest != pinned:
        raise ConfigError(f"data.{name}: {path} has sha256 {digest}, the config pins {pinned}; the file changed")
    return read_prompts(path), digest


def _prompt_files(ctx: Context, work: Path) -> tuple[list[tuple[Path, list[Any]]], dict[str, Any]]:
    """The eval prompts and SFT pool, each (path, records): the user's (sha256-pinned if given) or the embedded
    generator's; and the data info (their digests, the generator's settings when it ran)."""
    d = ctx.spec.data
    info: dict[str, Any] = {}
    if d.eval_prompts is None or d.sft_pool is None:
        info = make_eval_set(work, seed=d.generator_seed, n_eval=d.n_eval, n_pool=max(d.n_sft + ctx.spec.pairs.n_instructions, 1))
    user = user_prompt_files(d)
    files = []
    for name in PROMPT_FILES:
        path = user.get(name, work / f"{name}.jsonl")
        records, info[f"{name}_sha256"] = read_prompt_file(d, name, path)
        files.append((path, records))
    return files, info


def run_preflight(ctx: Context) -> dict[str, Any]:
    """Run every check; write ``preflight/`` (prompt records + results.json); raise on failure."""

    spec = ctx.spec
    work = ctx.run.path / ".work" / "preflight"
    work.mkdir(parents=True, exist_ok=True)
    prompt_files, data_info = _prompt_files(ctx, work)
    (_, eval_set), (_, pool) = prompt_files
    checks: list[dict[str, Any]] = [_overlap_check(eval_set, pool), _eval_size_check(spec, eval_set)]

    problem = revision_problem(spec.model)
    checks.append({"check": "model_revision", "passed": problem is None, "value": spec.model.revision, "fix": problem})
    # one setting, resolved per training stage: auto may pick unsloth for SFT and peft for DPO, or the reverse
    ranks = distributed.world().world_size
    choice, dpo_choice = (resolve_stage(spec, device=ctx.device, stage=stage, world_size=ranks) for stage in STAGES)
    checks.append({"check": "backend", "passed": True, "value": choice._asdict()})
    checks.append({"check": "dpo_backend", "passed": True, "value": dpo_choice._asdict()})
    ctx.say(f"preflight: backend {choice.backend} for SFT ({choice.reason})")
    ctx.say(f"preflight: backend {dpo_choice.backend} for DPO ({dpo_choice.reason})")
    problem = unsloth_ranks_problem((choice.backend, dpo_choice.backend), ranks)
    if problem:
        checks.append({"check": "backend_ranks", "passed": False, "value": ranks, "fix": problem})
    problem = dpo_lora_problem(spec.sft.lora, spec.dpo.lora, dpo_backend=dpo_choice.backend,
                               quantization=spec.model.quantization)
    checks.append({"check": "dpo_lora", "passed": problem is None, "value": spec.dpo.lora.model_dump(), "fix": problem})

    # base model decision + sentinels (the loader raises on an instruct model or a failed sentinel)
    loaded = _attempt(checks, "base_model", lambda: load_model(ctx, probe=True))
    loader_prov: dict[str, Any] | None = None
    arch = None
    if loaded is not None:
        model, tokenizer, loader_prov = loaded
        checks.append({"check": "base_model", "passed": True, "value": loader_prov.get("probe"),
                       "allow_instruct_reason": spec.model.allow_instruct_reason})
        checks.append({"check": "sentinels", "passed": True, "value": loader_prov.get("sentinels")})
        checks.append(_token_lengths_check(spec, model, tokenizer, eval_set, pool))
        arch = memory.arch_from_config(model.config.to_dict())
        del model, loaded

    checks.extend(_sanity(ctx))
    checks.append(_disk_check(ctx, arch))
    if arch is not None:
        checks.append(_gpu_memory_check(ctx, arch))
    params_b = sum(memory.count_params(arch).values()) / 1e9 if arch is not None else None
    projection = _attempt(checks, "projected_cost", lambda: project_stage1(spec, device=ctx.device, params_b=params_b,
                                                                          backend=choice.backend,
                                                                          dpo_backend=dpo_choice.backend))
    if projection is not None:
        ctx.say(f"preflight: {projection_line(projection)}")
        checks.append({"check": "projected_cost", "passed": projection["within_budget"], "value": projection,
                       "fix": f"{projection_line(projection)}: raise budget.max_cost_usd / budget.max_hours or "
                       "shrink the run (data.n_sft, pairs.n_instructions, epochs)"})

    prov = capture(ctx, "preflight", loader=loader_prov,
                   extra={"few_shot_digest": FEW_SHOT_DIGEST, "data": data_info, "backend": choice._asdict(),
                          "dpo_backend": dpo_choice._asdict()})
    return _write_results(ctx, prov, checks, data_info, prompt_files)


def _attempt(checks: list[dict[str, Any]], name: str, fn: Callable[[], T | None]) -> T | None:
    """The value of one check that computes something, or None after recording in *checks* why not.

    A :class:`~cleanroom.errors.CleanroomError` is the check failing: recorded with its message, and
    preflight goes on so that one run reports every failure. A check that returns None has no result
    to judge, which is a bug in the check, not a pass: it is recorded as failed with a message naming
    the check (fail closed), never skipped.
    """
    try:
        value = fn()
    except CleanroomError as exc:
        checks.append({"check": name, "passed": False, "error": f"{type(exc).__name__}: {exc}"})
        return None
    if value is None:
        checks.append({"check": name, "passed": False,
                       "error": f"preflight check {name!r} returned None instead of a result; this is a bug in "
                       "cleanroom, not a problem with your run: report it with this message"})
    return value


def _overlap_check(eval_set: list[Any], pool: list[Any]) -> dict[str, Any]:
    """Eval and train disjoint: no shared prompt and no shared 13-gram (:func:`check_overlap` raises if not)."""

    try:
        check_overlap(eval_set, pool, n=13)
    except CleanroomError as exc:
        return {"check": "overlap", "passed": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"check": "overlap", "passed": True, "value": "no shared prompt, no shared 13-gram"}


def _eval_size_check(spec: Any, eval_set: list[Any]) -> dict[str, Any]:
    """At least ``eval.min_n`` eval prompts, unless ``eval.override_reason`` says why fewer."""
    if len(eval_set) < spec.eval.min_n and not spec.eval.override_reason:
        return {"check": "eval_size", "passed": False, "value": len(eval_set),
                "error": f"{len(eval_set)} eval prompts < eval.min_n {spec.eval.min_n}"}
    return {"check": "eval_size", "passed": True, "value": len(eval_set)}


def _token_lengths_check(spec: Any, model: Any, tokenizer: Any, eval_set: list[Any], pool: list[Any]) -> dict[str, Any]:
    """SFT prompt + longest plausible completion + EOS must fit ``sft.train.max_length``; eval prompts
    plus their new tokens must fit the model's ``max_position_embeddings``."""


    sft_lengths = np.array([len(tokenizer(zero_shot_prompt(r.prompt))["input_ids"]) for r in pool])
    eval_lengths = np.array([len(tokenizer(few_shot_prompt(r.prompt))["input_ids"]) for r in eval_set])
    limit = spec.sft.train.max_length
    worst, basis = sft_worst_length(spec, pool, tokenizer)
    max_pos = getattr(model.config, "max_position_embeddings", None)
    eval_worst = int(eval_lengths.max()) + spec.eval.generation.max_new_tokens
    return {
        "check": "token_lengths",
        "passed": worst <= limit and (max_pos is None or eval_worst <= max_pos),
        "value": {"sft_prompt_p50": float(np.median(sft_lengths)), "sft_prompt_max": int(sft_lengths.max()),
                  "eval_prompt_p50": float(np.median(eval_lengths)), "eval_prompt_max": int(eval_lengths.max()),
                  "sft_worst_case": worst, "sft_worst_case_basis": basis, "max_length": limit,
                  "eval_worst_case": eval_worst,
                  "max_position_embeddings": max_pos},
        "fix": None if worst <= limit else f"raise sft.train.max_length above {worst} ({basis}) or lower "
        "sft_generation.max_new_tokens (an example must never lose its EOS to truncation)",
    }


def _disk_check(ctx: Context, arch: Any) -> dict[str, Any]:
    """Free disk under the run directory against the floor and the SFT + DPO checkpoints' need."""
    spec = ctx.spec
    free = shutil.disk_usage(ctx.run.path).free / 1e9
    disk = checkpoint_disk(spec, arch) if arch is not None else None
    need_disk = max(spec.preflight.min_free_disk_gb, disk["total_bytes"] / 1e9 if disk else 0.0)
    return {"check": "disk_space", "passed": free >= need_disk,
            "value": {"free_gb": round(free, 2), "need_gb": round(need_disk, 2),
                      "floor_gb": spec.preflight.min_free_disk_gb, "checkpoints": disk},
            "fix": f"free at least {need_disk:.1f} GB under {ctx.run.path} (SFT + DPO checkpoints and "
            "adapters), or lower sft/dpo.train.save_total_limit"}


def _gpu_memory_check(ctx: Context, arch: Any) -> dict[str, Any]:
    """The larger of the SFT and DPO peak-memory estimates against the device (CUDA) or the budget."""
    estimates = memory_estimates(ctx.spec, arch)
    budget_gb = ctx.spec.budget.gpu_memory_gb
    if ctx.device == "cuda":
        # heavy optional: torch
        import torch  # deferred: torch is heavy and only needed on a CUDA device

        budget_gb = torch.cuda.get_device_properties(0).total_memory / 1e9
    worst_stage = max(estimates, key=lambda k: estimates[k].total_bytes)
    need_gb = estimates[worst_stage].total_bytes / 1e9
    return {"check": "gpu_memory", "passed": ctx.device != "cuda" or need_gb <= budget_gb,
            "value": {"estimate_gb": round(need_gb, 3), "peak_stage": worst_stage,
                      "device_gb": round(budget_gb, 1),
                      **{f"{k}_estimate_gb": round(e.total_bytes / 1e9, 3) for k, e in estimates.items()},
                      **{f"{k}_parts_gb": {p: round(v / 1e9, 4) for p, v in e.parts.items()}
                         for k, e in estimates.items()}},
            "fix": f"{worst_stage} needs {need_gb:.1f} GB > {budget_gb:.1f} GB: lower {worst_stage}.train."
            "batch_size or max_length, or enable gradient_checkpointing"}


def _write_results(ctx: Context, prov: Any, checks: list[dict[str, Any]], data_info: dict[str, Any],
                   prompts: list[tuple[Path, list[Any]]]) -> dict[str, Any]:
    """Write the preflight stage (prompt records, ``results.json``), or ``.work/preflight-failed.json``
    and raise with one message per failed check."""

    inputs = [path for path, _ in prompts]
    with ctx.run.stage("preflight", provenance=prov, inputs=inputs) as st:
        for name, (_, records) in zip(("eval_prompts.jsonl", "sft_pool.jsonl"), prompts, strict=True):
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

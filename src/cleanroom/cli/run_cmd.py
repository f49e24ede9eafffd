"""``cleanroom run stage1``: validate the profile, then run (or resume) Stage 1, or only estimate it."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from cleanroom import memory
from cleanroom.config import PIPELINES_DIR, load_config
from cleanroom.errors import ConfigError
from cleanroom.pipeline.preflight import (
    checkpoint_disk,
    memory_estimates,
    model_arch,
    project_stage1,
    revision_problem,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a pipeline (stage1)")
    p.add_argument("pipeline", choices=["stage1"], help="which pipeline")
    p.add_argument("--profile", default="tiny", help="shipped profile name (tiny, smollm2, qwen2.5-32b) or a YAML path")
    p.add_argument("--out", default="runs", type=Path, help="runs root directory (default: runs/)")
    p.add_argument("--resume", action="store_true",
                   help="continue an unfinished run of the same config (interrupted, stopped on budget or by "
                   "--stop-after); without it such a run is an error. A finished run is re-used either way: "
                   "every stage whose inputs are unchanged is skipped. budget.* and report_to are not part of "
                   "the run's identity, so raising the budget and passing --resume continues the same run")
    p.add_argument("--estimate", action="store_true",
                   help="validate the config and print the memory and cost estimate; run nothing")
    p.add_argument("--gate-report", default=None, type=Path, metavar="PATH",
                   help="the GPU gate's gate-report.json: project time and cost from its measured tokens/s "
                   "(same as budget.gate_report=PATH)")
    p.add_argument("--stop-after", default=None, help="stop after this stage (e.g. preflight)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="config overrides, e.g. sft.train.max_steps=20")
    p.set_defaults(handler=run)


def load_pipeline() -> Any:
    path = PIPELINES_DIR / "stage1.py"
    if not path.is_file():
        raise ConfigError(f"{path} not found: run cleanroom from a checkout of the repository (pipelines/ lives there)")
    spec = importlib.util.spec_from_file_location("cleanroom_pipelines_stage1", path)
    assert spec is not None and spec.loader is not None  # internal: the file exists
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def estimate(spec: Any) -> dict[str, Any]:
    """Memory, disk and cost estimate of the production run from the config alone (no weights needed)."""
    arch = model_arch(spec.model)
    estimates = memory_estimates(spec, arch)
    est, dpo = estimates["sft"], estimates["dpo"]
    common = dict(quantization=spec.model.quantization or "bf16", lora_r=spec.sft.lora.r,
                  lora_targets=spec.sft.lora.targets, seq_len=spec.sft.train.max_length,
                  gradient_checkpointing=spec.sft.train.gradient_checkpointing)
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


def resume_command(args: argparse.Namespace) -> str:
    """The ``cleanroom run`` line that continues this run: the same profile, out, options and overrides."""
    parts = ["cleanroom", "run", args.pipeline, "--profile", args.profile, "--out", str(args.out)]
    if args.gate_report is not None:
        parts += ["--gate-report", str(args.gate_report)]
    if args.no_progress:
        parts.append("--no-progress")
    return shlex.join([*parts, *args.overrides, "--resume"])


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.gate_report is not None:  # JSON-quoted: the override value is parsed as YAML
        overrides.append(f"budget.gate_report={json.dumps(str(args.gate_report))}")
    spec = load_config(args.profile, overrides)
    if args.estimate:
        problem = revision_problem(spec.model)  # the rule preflight applies: an estimate of an unpinned model
        if problem is not None:                 # would be an estimate of a run that cannot start
            raise ConfigError(problem)
        print(json.dumps(estimate(spec), indent=2))
        return 0
    pipeline = load_pipeline()
    try:
        path = pipeline.run_stage1(spec, args.out, resume=args.resume, progress=not args.no_progress,
                                   stop_after=args.stop_after)
    except KeyboardInterrupt:
        # a line of its own (a progress bar may hold the cursor mid-line), then the command that continues
        print(f"\ncleanroom run: interrupted; finished stages and checkpoints are kept. Continue with:\n"
              f"  {resume_command(args)}", file=sys.stderr, flush=True)
        return 130
    print(f"run directory: {path}")
    return 0

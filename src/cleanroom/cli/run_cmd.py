"""``cleanroom run stage1``: validate the profile, then run (or resume) Stage 1, or only estimate it."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from cleanroom import distributed
from cleanroom.cli._types import positive_int
from cleanroom.config import load_config
from cleanroom.errors import PatchedProcessError
from cleanroom.pipeline import ranks
from cleanroom.pipeline.estimate import estimate_stage1
from cleanroom.pipeline.stage1 import STAGES, run_stage1
from cleanroom.pipeline.training import FRESH_PROCESS_ENV


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
    p.add_argument("--stop-after", default=None, choices=[name for name, _ in STAGES], metavar="STAGE",
                   help=f"stop after this stage: {', '.join(name for name, _ in STAGES)}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--num-processes", type=positive_int, default=None, metavar="N",
                   help="run under `accelerate launch` on N ranks (SFT and DPO data-parallel, same global batch)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="config overrides, e.g. sft.train.max_steps=20")
    p.set_defaults(handler=run)


def resume_command(args: argparse.Namespace) -> str:
    """The ``cleanroom run`` line that continues this run: this command's arguments plus ``--resume``."""
    argv = _launched_argv(args)
    return shlex.join(["cleanroom", *argv, *([] if args.resume else ["--resume"])])


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.gate_report is not None:  # JSON-quoted: the override value is parsed as YAML
        overrides.append(f"budget.gate_report={json.dumps(str(args.gate_report))}")
    spec = load_config(args.profile, overrides)
    if args.estimate:

        print(json.dumps(estimate_stage1(spec), indent=2))
        return 0

    if args.num_processes is not None:
        return ranks.relaunch(args.num_processes, _launched_argv(args), cpu=spec.device == "cpu")
    if ranks.is_follower():
        ranks.follow(spec)
        distributed.shutdown()
        return 0
    try:
        path = run_stage1(spec, args.out, resume=args.resume, progress=not args.no_progress,
                          stop_after=args.stop_after)
        distributed.finish()
        distributed.shutdown()
    except PatchedProcessError as exc:
        return _continue_in_fresh_process(args, exc)
    except KeyboardInterrupt:
        # a line of its own (a progress bar may hold the cursor mid-line), then the command that continues
        print(f"\ncleanroom run: interrupted; finished stages and checkpoints are kept. Continue with:\n"
              f"  {resume_command(args)}", file=sys.stderr, flush=True)
        return 130
    print(f"run directory: {path}")
    return 0



def _continue_in_fresh_process(args: argparse.Namespace, exc: PatchedProcessError) -> int:
    """Replace this process with the same ``cleanroom run`` plus ``--resume``: the finished stages are on disk
    and are reused, and the refusing stage runs where nothing was patched. Once per stage and only for a
    single process (a launcher's ranks cannot be replaced one by one): otherwise the refusal stands."""
    if os.environ.get(FRESH_PROCESS_ENV) == exc.stage or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise exc
    argv = _launched_argv(args)
    if "--resume" not in argv:
        argv.insert(argv.index("--out") + 2, "--resume")
    print(f"cleanroom run: {exc.stage} continues in a fresh process (this one was patched: {str(exc).split(';')[0]}); "
          f"the same as:\n  {shlex.join(['cleanroom', *argv])}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.environ[FRESH_PROCESS_ENV] = exc.stage
    os.execv(sys.executable, [sys.executable, "-m", "cleanroom.cli", *argv])
    return 2  # not reached: execv does not return


def _launched_argv(args: argparse.Namespace) -> list[str]:
    """This command's arguments for each rank (without --num-processes): the same run on every rank."""
    argv = ["run", args.pipeline, "--profile", args.profile, "--out", str(args.out)]
    argv += ["--gate-report", str(args.gate_report)] if args.gate_report is not None else []
    argv += ["--stop-after", args.stop_after] if args.stop_after is not None else []
    argv += [flag for flag, on in (("--resume", args.resume), ("--no-progress", args.no_progress)) if on]
    return [*argv, *args.overrides]

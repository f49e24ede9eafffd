"""Stage 1, top to bottom: config → provenance → preflight gates → stages → report → attestation.

    baseline → SFT data → SFT → merge proof → preference pairs → DPO → evaluation → report

Every stage reads the previous stage's artifacts from ``runs/<run_id>/`` and writes its own with
provenance. A stage whose manifest exists and whose inputs still have the digests its manifest
recorded is done and is skipped (its config is fixed by the run id, derived from the resolved
config's digest); a stage whose inputs changed is re-run, with every stage after it; an
interrupted stage resumes its record files and training checkpoints. A finished stage whose own files
or records fail its manifest stops the run (exit 1) naming the broken edge, before anything consumes it. An unfinished run is continued
only with ``resume=True`` (``--resume``); a finished one is re-used either way. ``cleanroom verify runs/<run_id>`` re-checks it all.
Run it as ``cleanroom run stage1 --profile tiny [key=value ...]`` (or ``python pipelines/stage1.py`` in a
checkout, the same command). This module ships in the wheel, with the profiles and the constitution beside it
as package data, so an installed cleanroom runs the same pipeline outside a checkout.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from cleanroom.artifacts import RunDir, atomic_write_bytes, pretty_json
from cleanroom.config import RunSpec, config_sha256, identity_dict, operational_dict
from cleanroom.errors import CleanroomError, ConfigError, PatchedProcessError, ProvenanceError
from cleanroom.pipeline.baseline import run_baseline
from cleanroom.pipeline.common import BudgetMeter, Context, capture, resolve_device
from cleanroom.pipeline.evaluation import run_eval
from cleanroom.pipeline.pairs import run_pairs
from cleanroom.pipeline.preflight import run_preflight
from cleanroom.pipeline.runlog import open_run_log
from cleanroom.pipeline.sft_data import run_sft_data
from cleanroom.pipeline.training import run_dpo, run_merge, run_sft
from cleanroom.report import write_report
from cleanroom.training.sft import check_tracker

STAGES = [
    ("preflight", run_preflight),
    ("baseline", run_baseline),
    ("sft_data", run_sft_data),
    ("sft", run_sft),
    ("merge", run_merge),
    ("pairs", run_pairs),
    ("dpo", run_dpo),
    ("eval", run_eval),
]


def record_settings(run_dir: Path, settings: dict) -> None:
    """Write the operational settings (budget, report_to: not part of the run's identity) into run.json,
    appending each change to ``settings_history`` so a raised budget is on record."""
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text())
    if meta.get("settings") == settings:
        return
    meta["settings"] = settings
    meta.setdefault("settings_history", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                  "settings": settings})
    atomic_write_bytes(meta_path, pretty_json(meta))


def run_stage1(spec: RunSpec, out: Path, *, resume: bool = False, progress: bool = True,
               stop_after: str | None = None) -> Path:
    """Run (or resume) Stage 1 for *spec* under *out*; return the run directory."""

    check_tracker(spec.report_to)  # a missing optional tracker package fails here, before any work
    names = [name for name, _ in STAGES]
    if stop_after is not None and stop_after not in names:
        raise ConfigError(f"stop_after = {stop_after!r} is not a Stage 1 stage; allowed: {' | '.join(names)}")
    out = Path(out).resolve()
    run_id = f"{spec.name}-{config_sha256(spec)[:12]}"
    existing = out / run_id
    if (existing / "run.json").exists() and not (existing / "attestation.json").exists() and not resume:
        # a finished run is simply re-used (every stage skipped); continuing a half-done one must be asked for
        raise ConfigError(
            f"run {existing} exists and did not finish (interrupted, stopped on budget or by --stop-after); pass "
            "--resume to continue it, or --out elsewhere to start afresh"
        )
    fresh = not (existing / "run.json").exists()
    run = RunDir.create(out, run_id, identity_dict(spec))
    record_settings(run.path, operational_dict(spec))
    try:
        with open_run_log(run.path / "run.log", progress=progress) as log_file:
            return _run_stages(spec, run, log_file, resume=resume, progress=progress, stop_after=stop_after)
    except CleanroomError as exc:
        if not (run.path / "preflight" / "manifest.json").exists():
            # a failed preflight is not an interrupted run: nothing worth resuming was made, so a fresh run
            # directory goes (else the next attempt would demand --resume) and the message says what happened
            if fresh:
                shutil.rmtree(run.path)
            kept = "nothing was kept" if fresh else f"{run.path} is left as it was"
            exc.args = (f"{exc} (preflight failed, so the run did not start and {kept}; fix the config and re-run: "
                        "a changed config starts a fresh run)",)
        raise


def _spent_before(clock: Path) -> float:
    """Seconds earlier attempts spent (``.work/clock.json``), 0 for a first attempt; a damaged clock is an error,
    never a fresh budget (that would let a resumed run spend the whole budget again)."""
    if not clock.exists():
        return 0.0
    try:
        seconds = json.loads(clock.read_text(encoding="utf-8"))["seconds"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        seconds, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = f"seconds = {seconds!r}"
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and 0 <= seconds < float("inf"):
        return float(seconds)
    raise ProvenanceError(
        f"{clock}: the budget clock of earlier attempts is damaged ({why}); restore it, or write "
        f'{{"seconds": S}} with the hours already spent times 3600 to resume, or start afresh with another --out'
    )


def _run_stages(spec: RunSpec, run: RunDir, log_file: Any, *, resume: bool, progress: bool,
                stop_after: str | None) -> Path:
    clock = run.path / ".work" / "clock.json"  # time spent by earlier attempts counts against the budget
    spent_before = _spent_before(clock)
    budget = BudgetMeter(spec.budget.price_per_hour, spec.budget.max_cost_usd, spec.budget.max_hours,
                         spent_before_s=spent_before)
    ctx = Context(spec=spec, run=run, device=resolve_device(spec.device), budget=budget, resume=resume,
                  progress=progress, log_file=log_file)
    ctx.say(f"run {run.path} on {ctx.device} (config sha256 {run.config_sha256[:12]})")
    started = time.monotonic()
    try:
        stale = False  # an upstream stage re-ran: every later stage's result is out of date
        for name, stage in STAGES:
            done = not stale and ctx.stage_done(name)  # a finished stage whose files fail its manifest stops here
            changed = ctx.changed_inputs(name) if done else []
            if changed:
                ctx.say(f"{name}: inputs changed since it ran ({', '.join(changed)}): re-running it and every "
                        "stage after it")
                stale = True
            if done and not stale:
                ctx.say(f"{name}: done earlier, skipped (inputs unchanged)")
            else:
                if stale:
                    ctx.discard_stage(name)
                budget.check(name)
                t0 = time.monotonic()
                ctx.say(f"{name}: running")
                try:
                    stage(ctx)
                except PatchedProcessError as exc:  # the CLI continues in a fresh process: say why in the log
                    ctx.say(f"{name}: refused in this process: {exc}")
                    raise
                ctx.say(f"{name}: finished in {time.monotonic() - t0:.1f} s (spent so far ${budget.cost_usd:.2f})")
            if name == stop_after:
                ctx.say(f"stopping after {name} as asked")
                return run.path
    finally:
        atomic_write_bytes(clock, pretty_json({"seconds": spent_before + time.monotonic() - started}))

    spent = {"hours": budget.hours, "cost_usd": budget.cost_usd}
    with run.stage("report", provenance=capture(ctx, "report", extra={"spent": spent})) as st:
        outcome = write_report(run.path, st.dir, spent)
    run.finalize()
    ctx.say(f"report: {run.path / 'report' / 'report.html'}")
    ctx.say(f"Stage 2: {outcome['verdict']}" + (f" ({'; '.join(outcome['reasons'])})" if outcome["reasons"] else ""))
    return run.path

"""The GPU deployment gate's report: each check's figures, pass/fail, the device, and GO / NO-GO.

Why a recorder instead of reading pytest's outcomes: a failed assertion says *that* a check failed,
the report must also say *by how much* (the figure) and *what to change*. Each gate test opens
``recorder.check(id)``, records its figures, states its requirements with ``require(ok, fix)``; the
context manager then records pass/fail (an exception inside the block is a failure too, with its
message) and raises ``AssertionError`` naming every unmet requirement, so pytest and the report agree.

Verdict: ``GO`` iff every required check (1-9 of :data:`CHECKS`) was recorded and passed. A required
check that never ran (deselected, crashed before recording) is a NO-GO as well: the gate proves what
it measured, nothing else. Check 10 (Unsloth parity) is optional: when Unsloth cannot be imported it
is recorded as skipped with the reason, and the PEFT backend the pipeline uses by default is unaffected.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleanroom.artifacts import atomic_write_bytes
from cleanroom.errors import ConfigError, one_line
from cleanroom.provenance import capture_provenance

#: check id -> (title, required for GO)
CHECKS: dict[str, tuple[str, bool]] = {
    "1_nf4_load": ("nf4 load, sentinels and base-model probe on the GPU", True),
    "2_lora_init": ("a fresh LoRA adapter leaves the logits unchanged", True),
    "3_sft_steps": ("20 QLoRA SFT steps: loss falls, only LoRA changes, no NaN", True),
    "4_dpo_step0": ("DPO step 0 against the SFT policy: loss ln 2, margin 0", True),
    "5_save_resume": ("adapter save/reload logits; kill-and-resume losses", True),
    "6_merge": ("merged vs adapter logits", True),
    "7_generation": ("batched guarded generation throughput", True),
    "8_memory_model": ("memory model vs measured peaks; 32B projection on 80 GB", True),
    "9_cost": ("projected Stage 1 hours and dollars", True),
    "10_unsloth": ("Unsloth backend parity with PEFT", False),
    # required only when the gate is asked for several GPUs ($CLEANROOM_GATE_GPUS > 1): then NOT RUN is NO-GO
    "11_data_parallel": ("2 ranks vs 1 process on the same global batch: losses, tokens/s, scaling", False),
}


@dataclass(frozen=True)
class CheckResult:
    """One gate check. ``status``: ``passed`` | ``failed`` | ``skipped``."""

    check: str
    title: str
    status: str
    figures: dict[str, Any]
    fix: str = ""
    detail: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "title": self.title, "status": self.status, "figures": self.figures,
                "fix": self.fix, "detail": self.detail, "seconds": round(self.seconds, 3)}


@dataclass
class _Open:
    """The mutable state of a check while its block runs (see :meth:`GateRecorder.check`)."""

    figures: dict[str, Any] = field(default_factory=dict)
    unmet: list[str] = field(default_factory=list)

    def figure(self, **values: Any) -> None:
        """Record figures (JSON-serialisable; floats are kept as measured)."""
        self.figures.update(values)

    def require(self, ok: bool, fix: str) -> bool:
        """State a requirement; ``fix`` says what failed and what to change. Returns ``ok``."""
        if not ok:
            self.unmet.append(fix)
        return bool(ok)


class GateRecorder:
    """Collects :class:`CheckResult` s during a ``pytest -m gpu`` session (the ``gate_recorder`` fixture)."""

    def __init__(self) -> None:
        self.results: dict[str, CheckResult] = {}
        self.context: dict[str, Any] = {}
        gpus = os.environ.get("CLEANROOM_GATE_GPUS", "1")
        if not gpus.isdigit() or int(gpus) < 1:
            raise ConfigError(f"CLEANROOM_GATE_GPUS = {gpus!r} is invalid; allowed: an integer >= 1 (GPUs the gate must use)")
        self.gpus_requested = int(gpus)

    def set_context(self, **values: Any) -> None:
        """Session facts for the report header: device, model, versions."""
        self.context.update(values)

    @contextmanager
    def check(self, check: str) -> Iterator[_Open]:
        if check not in CHECKS:
            raise KeyError(f"unknown gate check {check!r}; known: {list(CHECKS)}")
        state = _Open()
        start = time.perf_counter()
        try:
            yield state
        except BaseException as exc:
            if type(exc).__name__ == "Skipped":  # pytest.skip(...) inside the block
                self._put(check, "skipped", state, detail=str(exc), start=start)
            else:
                self._put(check, "failed", state, detail=f"{type(exc).__name__}: {one_line(exc)}"[:2000], start=start,
                          fix="; ".join(state.unmet) or "see detail (the check raised before finishing)")
            raise
        self._put(check, "failed" if state.unmet else "passed", state, start=start, fix="; ".join(state.unmet))
        if state.unmet:
            raise AssertionError(f"gate check {check} failed: " + "; ".join(state.unmet))

    def _put(self, check: str, status: str, state: _Open, *, start: float, fix: str = "", detail: str = "") -> None:
        self.results[check] = CheckResult(check, CHECKS[check][0], status, dict(state.figures), fix, detail,
                                          time.perf_counter() - start)


def is_required(check: str, *, gpus_requested: int = 1) -> bool:
    """Whether *check* must pass for GO; the data-parallel check is required when ``gpus_requested > 1``."""
    return CHECKS[check][1] or (check == "11_data_parallel" and gpus_requested > 1)


def skipped_required(results: dict[str, CheckResult], *, gpus_requested: int = 1) -> list[str]:
    """The required checks that started and skipped themselves: pytest counts a skip as no failure, so the
    session must fail on these (a check that was only deselected is "did not run" in the verdict instead)."""
    return [c for c, r in results.items()
            if c in CHECKS and r.status == "skipped" and is_required(c, gpus_requested=gpus_requested)]


def verdict(results: dict[str, CheckResult], *, gpus_requested: int = 1) -> tuple[str, list[str]]:
    """``("GO" | "NO-GO", reasons)``: every required check recorded and passed, else NO-GO naming each.
    With ``gpus_requested > 1`` the data-parallel check is required too."""
    reasons = []
    for check, (title, _) in CHECKS.items():
        required = is_required(check, gpus_requested=gpus_requested)
        res = results.get(check)
        if res is None:
            if required:
                reasons.append(f"{check} ({title}) did not run")
        elif res.status == "failed":
            reasons.append(f"{check} failed: {res.fix or res.detail}")
        elif res.status == "skipped" and required:
            reasons.append(f"{check} was skipped: {res.detail}")
    return ("GO" if not reasons else "NO-GO"), reasons


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def render_markdown(payload: dict[str, Any]) -> str:
    """gate-report.md from the JSON payload (one table row per check, then the reasons for a NO-GO)."""
    ctx = payload["context"]
    lines = [f"# GPU deployment gate: **{payload['verdict']}**", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in ctx.items()]
    lines += ["", "| check | status | figures | what to change |", "| --- | --- | --- | --- |"]
    for row in payload["checks"]:
        figures = "; ".join(f"{k} = {_fmt(v)}" for k, v in row["figures"].items() if not isinstance(v, dict | list))
        note = row["fix"] or (row["detail"] if row["status"] != "passed" else "")
        lines.append(f"| {row['check']} | {row['status']} | {figures} | {note.replace('|', '/')} |")
    if payload["reasons"]:
        lines += ["", "## Why NO-GO", ""] + [f"- {r}" for r in payload["reasons"]]
    nested = [(row["check"], k, v) for row in payload["checks"] for k, v in row["figures"].items()
              if isinstance(v, dict | list)]
    if nested:
        lines += ["", "## Details", ""] + [f"- {c} {k}: {_fmt(v)}" for c, k, v in nested]
    return "\n".join(lines) + "\n"


def write_report(recorder: GateRecorder, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``gate-report.json`` and ``gate-report.md`` into ``out_dir``; returns both paths."""

    decision, reasons = verdict(recorder.results, gpus_requested=recorder.gpus_requested)
    ordered = [recorder.results[c].to_dict() for c in CHECKS if c in recorder.results]
    record = capture_provenance("gpu_gate", config={"checks": list(CHECKS)},
                                extra={"verdict": decision, "context": recorder.context})
    payload = {"verdict": decision, "reasons": reasons, "context": recorder.context, "checks": ordered,
               "provenance": record.to_dict()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "gate-report.json", out / "gate-report.md"
    atomic_write_bytes(json_path, (json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n").encode())
    atomic_write_bytes(md_path, render_markdown(payload).encode())
    return json_path, md_path


__all__ = ["CHECKS", "CheckResult", "GateRecorder", "is_required", "render_markdown", "skipped_required", "verdict",
           "write_report"]

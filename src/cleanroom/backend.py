"""Which training backend a run uses: ``peft``, ``unsloth``, or ``auto`` resolved once per run.

``auto`` is Unsloth only when the device is CUDA, the quantization is one Unsloth loads (nf4 or none),
``unsloth`` imports (:func:`cleanroom.training.unsloth_backend.unsloth_available`) *and* the GPU gate
measured it on this box (``budget.gate_report``): check 10 passed (loss parity with peft, the tokenizer
clean) and its steady-state SFT step beat peft's (``unsloth_faster``). Otherwise PEFT, with the measured
reason: importing is not evidence of being faster (on the H200 Unsloth's first step compiles for ~27 s).
The model name is never changed by the choice (Unsloth is asked for the exact name or path, and a
swapped repository is refused by ``load_unsloth``). The choice and its reason are returned so the
caller records them (preflight's results and provenance, the run log). An explicit ``unsloth`` is
not resolved here: where it cannot run, the SFT stage raises with the install hint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from cleanroom.errors import ConfigError, InputError
from cleanroom.jsonl import loads
from cleanroom.training import unsloth_backend

BACKENDS = ("peft", "unsloth", "auto")


class BackendChoice(NamedTuple):
    """The backend a run trains with, what was asked for, and why."""

    backend: str
    requested: str
    reason: str


def gate_evidence(gate_report: str | Path | None) -> tuple[bool, str]:
    """``(unsloth measured faster at parity, why)`` from a gate report's check 10."""
    if not gate_report:
        return False, "no GPU gate report (set budget.gate_report) measured unsloth against peft on this box"
    path = Path(gate_report)
    try:
        report: Any = loads(path.read_bytes(), strict=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"budget.gate_report {path}: cannot read it as JSON ({exc}); point it at the "
                         "gate-report.json that `pytest -m gpu` wrote") from exc
    checks = report.get("checks", []) if isinstance(report, dict) else []
    check = next((c for c in checks if isinstance(c, dict) and c.get("check") == "10_unsloth"), None)
    if check is None or check.get("status") != "passed":
        status = "absent" if check is None else check.get("status")
        detail = "" if check is None else f": {check.get('fix') or check.get('detail') or ''}".rstrip(": ")
        return False, f"gate check 10 (unsloth beside peft) {status} in {path}{detail}"
    f = check.get("figures", {})
    speeds = (f"unsloth {f.get('unsloth_steady_tokens_per_s')} vs peft {f.get('peft_steady_tokens_per_s')} "
              f"steady tokens/s, first step {f.get('unsloth_first_step_s')} s")
    if not f.get("unsloth_faster"):
        return False, f"the gate measured unsloth no faster at parity ({speeds})"
    return True, f"the gate measured unsloth faster at parity ({speeds})"


def resolve_backend(requested: str, *, device: str, quantization: str | None,
                    gate_report: str | Path | None = None) -> BackendChoice:
    """``auto`` → ``unsloth`` if CUDA, nf4/no quantization, unsloth imports and the gate measured it faster at
    parity (:func:`gate_evidence`), else ``peft``; explicit choices as given."""
    if requested not in BACKENDS:
        raise ConfigError(f"backend = {requested!r} is invalid; allowed: {' | '.join(BACKENDS)}")
    if requested != "auto":
        return BackendChoice(requested, requested, "configured")
    if device != "cuda":
        return BackendChoice("peft", requested, f"auto: device is {device}, unsloth needs CUDA")
    if quantization not in (None, "nf4"):
        return BackendChoice("peft", requested, f"auto: unsloth has no {quantization} path")
    faster, why = gate_evidence(gate_report)  # the report first: the import check starts a child Python
    if not faster:
        return BackendChoice("peft", requested, f"auto: {why}")
    reason = unsloth_backend.unsloth_available()
    if reason is not None:
        return BackendChoice("peft", requested, f"auto: {reason}")
    return BackendChoice("unsloth", requested, f"auto: {why}")


__all__ = ["BACKENDS", "BackendChoice", "gate_evidence", "resolve_backend"]

"""Which training backend each training stage uses: ``peft``, ``unsloth``, or ``auto`` resolved per stage.

One ``backend`` setting serves both training stages, SFT and DPO; an explicit ``peft`` or ``unsloth`` is
taken as given for both, while ``auto`` is resolved once per run *for each stage*, since Unsloth may speed
up SFT and DPO by different amounts. ``auto`` is Unsloth for a stage only when the device is CUDA, the
quantization is one Unsloth loads (nf4 or none), ``unsloth`` imports
(:func:`cleanroom.training.unsloth_backend.unsloth_available`) *and* the GPU gate measured that stage on
this box (``budget.gate_report``): check 10 passed (loss parity with peft, the tokenizer clean) and its
steady-state step of that stage beat peft's (``unsloth_faster`` for SFT, ``unsloth_dpo_faster`` for DPO:
:data:`cleanroom.cost.UNSLOTH_FIGURES`). Otherwise PEFT, with the measured reason: importing is not
evidence of being faster (on the H200 Unsloth's first step compiles for ~27 s), and a report from before
the gate compared DPO says so (re-run the gate). The model name is never changed by the choice (Unsloth is
asked for the exact name or path, and a swapped repository is refused by ``load_unsloth``). The choice and
its reason are returned so the caller records them (preflight's results and provenance, the run log). An
explicit ``unsloth`` is not resolved here: where it cannot run, the training stage raises with the install
hint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from cleanroom.cost import UNSLOTH_FIGURES, unsloth_check
from cleanroom.errors import ConfigError, InputError
from cleanroom.jsonl import loads
from cleanroom.training import unsloth_backend

BACKENDS = ("peft", "unsloth", "auto")
STAGES = ("sft", "dpo")  # the training stages a backend is resolved for


class BackendChoice(NamedTuple):
    """The backend a training stage trains with, what was asked for, and why."""

    backend: str
    requested: str
    reason: str


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ConfigError(f"backend stage = {stage!r} is invalid; allowed: {' | '.join(STAGES)}")


def gate_evidence(gate_report: str | Path | None, stage: str = "sft") -> tuple[bool, str]:
    """``(unsloth measured faster at parity for stage, why)`` from a gate report's check 10.

    *stage* is ``"sft"`` or ``"dpo"``; each reads its own figures (:data:`cleanroom.cost.UNSLOTH_FIGURES`). A
    passed check 10 without that stage's figures (a gate from before it measured DPO) is no evidence.
    """
    _check_stage(stage)
    if not gate_report:
        return False, "no GPU gate report (set budget.gate_report) measured unsloth against peft on this box"
    path = Path(gate_report)
    try:
        report: Any = loads(path.read_bytes(), strict=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"budget.gate_report {path}: cannot read it as JSON ({exc}); point it at the "
                         "gate-report.json that `pytest -m gpu` wrote") from exc
    check = unsloth_check(report.get("checks", []) if isinstance(report, dict) else [])
    if check is None or check.get("status") != "passed":
        status = "absent" if check is None else check.get("status")
        detail = "" if check is None else f": {check.get('fix') or check.get('detail') or ''}".rstrip(": ")
        return False, f"gate check 10 (unsloth beside peft) {status} in {path}{detail}"
    f, names = check.get("figures") or {}, UNSLOTH_FIGURES[stage]
    if f.get(names.faster) is None:  # absent (a gate from before it measured the stage) or null (not compared)
        return False, (f"gate check 10 in {path} did not compare {stage.upper()} on unsloth with peft (no "
                       f"{names.faster}: a gate from before it measured that stage, or its peft run (check 4 for "
                       "DPO) did not pass in the same session): re-run the GPU gate (pytest -m gpu "
                       "verification/test_gpu_gate.py)")
    # what was measured, worded so the SFT messages read as they always have
    subject, unit = ("unsloth", "tokens/s") if stage == "sft" else ("DPO on unsloth", "DPO tokens/s")
    speeds = (f"unsloth {f.get(names.unsloth_steady)} vs peft {f.get(names.peft_steady)} "
              f"steady {unit}, first step {f.get(names.first_step)} s")
    if not f.get(names.faster):
        return False, f"the gate measured {subject} no faster at parity ({speeds})"
    return True, f"the gate measured {subject} faster at parity ({speeds})"


def resolve_backend(requested: str, *, device: str, quantization: str | None,
                    gate_report: str | Path | None = None, stage: str = "sft", world_size: int = 1) -> BackendChoice:
    """The backend training *stage* (``"sft"`` or ``"dpo"``) uses: ``auto`` → ``unsloth`` if one process (Unsloth
    trains in one here), CUDA, nf4/no quantization, unsloth imports and the gate measured that stage faster at parity
    (:func:`gate_evidence`), else ``peft``; explicit choices as given, for either stage (an explicit unsloth on
    several ranks is refused by preflight and the training stages)."""
    _check_stage(stage)
    if requested not in BACKENDS:
        raise ConfigError(f"backend = {requested!r} is invalid; allowed: {' | '.join(BACKENDS)}")
    if requested != "auto":
        return BackendChoice(requested, requested, "configured")
    if world_size > 1:
        return BackendChoice("peft", requested, f"auto: {world_size} ranks, and unsloth trains in one process here")
    if device != "cuda":
        return BackendChoice("peft", requested, f"auto: device is {device}, unsloth needs CUDA")
    if quantization not in (None, "nf4"):
        return BackendChoice("peft", requested, f"auto: unsloth has no {quantization} path")
    faster, why = gate_evidence(gate_report, stage)  # the report first: the import check starts a child Python
    if not faster:
        return BackendChoice("peft", requested, f"auto: {why}")
    reason = unsloth_backend.unsloth_available()
    if reason is not None:
        return BackendChoice("peft", requested, f"auto: {reason}")
    return BackendChoice("unsloth", requested, f"auto: {why}")


def resolve_stage(spec: Any, *, device: str, stage: str, world_size: int = 1) -> BackendChoice:
    """:func:`resolve_backend` for a run spec's training *stage*: its ``backend``, quantization and gate report (the
    one call preflight, the cost projection and the training stages share)."""
    return resolve_backend(spec.backend, device=device, quantization=spec.model.quantization,
                           gate_report=spec.budget.gate_report, stage=stage, world_size=world_size)


def unsloth_ranks_problem(backends: Any, world_size: int) -> str | None:
    """Why *backends* (the stages' resolved backends) cannot run on *world_size* ranks, or None: Unsloth trains in one
    process here (its data-parallel path has not run in this project; ``auto`` already picks peft on several ranks)."""
    if world_size > 1 and "unsloth" in backends:
        return (f"backend unsloth on {world_size} ranks is not supported (tested in one process only); run without "
                "--num-processes / accelerate launch, or set backend=peft (or auto)")
    return None


def dpo_lora_problem(sft_lora: Any, dpo_lora: Any, *, dpo_backend: str, quantization: str | None) -> str | None:
    """Why ``dpo.lora`` cannot be honoured, or None. DPO trains the SFT adapter in place (so ``sft.lora`` is the
    adapter trained) on a quantized base, where adapters are not merged, and on Unsloth, whose LoRA is filled with
    ``sft/adapter``; a fresh ``dpo.lora`` over the merged SFT model only on an unquantized base with peft. A
    ``dpo.lora`` that differs from ``sft.lora`` would then be silently ignored: refused instead."""
    def shape(lora: Any) -> tuple[Any, ...]:  # what decides the adapter (dropout is off in DPO; targets as a set)
        return lora.r, float(lora.alpha), lora.use_rslora, frozenset(lora.targets)

    if (dpo_backend == "unsloth" or quantization is not None) and shape(dpo_lora) != shape(sft_lora):
        where = "on unsloth" if dpo_backend == "unsloth" else f"on a {quantization} base"
        return (f"dpo.lora {dpo_lora!r} differs from sft.lora {sft_lora!r}, but {where} DPO trains the SFT adapter in "
                "place (sft.lora); set dpo.lora equal to sft.lora, or train DPO with backend=peft on an unquantized base")
    return None


__all__ = ["BACKENDS", "STAGES", "BackendChoice", "dpo_lora_problem", "gate_evidence", "resolve_backend",
           "resolve_stage", "unsloth_ranks_problem"]

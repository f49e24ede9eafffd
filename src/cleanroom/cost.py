"""Projected wall-clock hours and dollars of a Stage 1 run, from measured throughputs.

Every phase is a token count divided by a measured rate: ``hours = tokens / (tokens_per_s * 3600)``,
``dollars = hours * price_per_hour``. The Stage 1 phases and their token counts:

* generation (baseline eval, SFT data, preference sampling, final evals): ``prompts * samples *
  new_tokens`` (each phase's own ``max_new_tokens``) at the measured *generation* tokens/s
  (decode-bound, so prompt tokens are not counted);
* SFT: ``examples * tokens_per_example * epochs`` at the measured *training* tokens/s;
* DPO: ``pairs * 2 * tokens_per_side * epochs`` (chosen and rejected are both forwarded) at the
  measured DPO tokens/s, or, if DPO was not measured, the SFT rate times ``DPO_THROUGHPUT_FACTOR``
  (the extra no-grad reference forward costs about a third of a forward+backward: 1 / (1 + 1/3)).

Fixed overheads (model loads, merges, checkpoint writes) enter as ``overhead_s``. The default price
is $1.74/hour for the reference single 80 GB A100/H100.

The measured rates come from the GPU gate's ``gate-report.json`` (:func:`read_gate_rates`): the
training and generation tokens/s check 9 took from the largest model the gate measured, usually a
smaller architecture than the production one. :meth:`GateRates.scaled_to` carries them to the
production size the way gate check 9 does: tokens/s taken as inversely proportional to the parameter
count, ``rate_target = rate_gate * params_gate / params_target`` (an approximation: decoding a larger
model is less memory-bound per parameter, so it errs towards a longer, dearer projection). Check 9's training
rate is peft's; a stage that trains on Unsloth is priced at check 10's measured Unsloth/peft ratio for that
stage (:attr:`GateRates.unsloth_speedup` for SFT, :attr:`GateRates.unsloth_dpo_speedup` for DPO).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from cleanroom.errors import ConfigError, InputError, MissingFileError
from cleanroom.jsonl import loads

DEFAULT_PRICE_PER_HOUR = 1.74
DPO_THROUGHPUT_FACTOR = 0.75


class UnslothFigures(NamedTuple):
    """The names under which GPU gate check 10 (``10_unsloth``) records one training stage's Unsloth beside peft."""

    faster: str  # bool: Unsloth's steady tokens/s above peft's, at parity
    unsloth_steady: str  # Unsloth's steady-state tokens/s
    peft_steady: str  # peft's steady-state tokens/s on the same model and rows
    first_step: str  # Unsloth's first step in seconds (its compile warm-up)


#: Check 10's figures per training stage: SFT on its rows, DPO on check 4's pairs (a report from before the gate
#: measured DPO lacks the second set).
UNSLOTH_FIGURES = {
    "sft": UnslothFigures("unsloth_faster", "unsloth_steady_tokens_per_s", "peft_steady_tokens_per_s",
                          "unsloth_first_step_s"),
    "dpo": UnslothFigures("unsloth_dpo_faster", "unsloth_dpo_steady_tokens_per_s", "peft_dpo_steady_tokens_per_s",
                          "unsloth_dpo_first_step_s"),
}


@dataclass(frozen=True)
class Phase:
    """One phase of work: ``tokens`` processed at ``tokens_per_s``."""

    name: str
    tokens: float
    tokens_per_s: float

    @property
    def seconds(self) -> float:
        return self.tokens / self.tokens_per_s


@dataclass(frozen=True)
class CostProjection:
    """``phase_hours`` per phase (overhead included as its own key) at ``price_per_hour``; ``hours`` and
    ``dollars`` are derived from them, so the three can never disagree."""

    price_per_hour: float
    phase_hours: Mapping[str, float]

    @property
    def hours(self) -> float:
        return sum(self.phase_hours.values())

    @property
    def dollars(self) -> float:
        return self.hours * self.price_per_hour

    def within(self, *, max_cost_usd: float | None = None, max_hours: float | None = None) -> bool:
        """Whether the projection fits the budget (an unset limit always fits)."""
        return (max_cost_usd is None or self.dollars <= max_cost_usd) and (max_hours is None or self.hours <= max_hours)

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.2f} h" for k, v in self.phase_hours.items())
        return f"{self.hours:.2f} h, ${self.dollars:.2f} at ${self.price_per_hour:.2f}/h ({parts})"


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok or value != value or value == float("inf"):
        raise ConfigError(f"{name} = {value!r} is invalid; allowed: a finite number {'>= 0' if allow_zero else '> 0'}")


def project_cost(
    phases: list[Phase], *, price_per_hour: float = DEFAULT_PRICE_PER_HOUR, overhead_s: float = 0.0
) -> CostProjection:
    """Sum the phases' hours (plus ``overhead_s``) and price them."""
    _positive("price_per_hour", price_per_hour)
    _positive("overhead_s", overhead_s, allow_zero=True)
    hours: dict[str, float] = {}
    for p in phases:
        _positive(f"{p.name}.tokens", p.tokens, allow_zero=True)
        _positive(f"{p.name}.tokens_per_s (measured)", p.tokens_per_s)
        hours[p.name] = hours.get(p.name, 0.0) + p.seconds / 3600
    if overhead_s:
        hours["overhead"] = overhead_s / 3600
    return CostProjection(price_per_hour=float(price_per_hour), phase_hours=hours)


def stage1_phases(
    *,
    train_tokens_per_s: float,
    gen_tokens_per_s: float,
    dpo_tokens_per_s: float | None = None,
    n_eval_prompts: int = 300,
    eval_new_tokens: int = 512,
    n_models_evaluated: int = 3,
    n_pool_prompts: int = 2000,
    sft_samples_per_prompt: int = 1,
    sft_new_tokens: int = 512,
    n_sft_examples: int = 1000,
    sft_tokens_per_example: int = 700,
    sft_epochs: float = 2.0,
    n_pair_prompts: int = 500,
    pair_samples_per_prompt: int = 4,
    pair_new_tokens: int = 512,
    n_pairs: int = 500,
    pair_tokens_per_side: int = 700,
    dpo_epochs: float = 1.0,
) -> list[Phase]:
    """The Stage 1 phases (baseline → SFT data → SFT → pairs → DPO → eval) as token counts at measured rates."""
    _positive("train_tokens_per_s (measured)", train_tokens_per_s)
    _positive("gen_tokens_per_s (measured)", gen_tokens_per_s)
    dpo_rate = dpo_tokens_per_s if dpo_tokens_per_s is not None else train_tokens_per_s * DPO_THROUGHPUT_FACTOR
    return [
        Phase("baseline_eval", n_eval_prompts * eval_new_tokens, gen_tokens_per_s),
        Phase("sft_data", n_pool_prompts * sft_samples_per_prompt * sft_new_tokens, gen_tokens_per_s),
        Phase("sft", n_sft_examples * sft_tokens_per_example * sft_epochs, train_tokens_per_s),
        Phase("pairs", n_pair_prompts * pair_samples_per_prompt * pair_new_tokens, gen_tokens_per_s),
        Phase("dpo", n_pairs * 2 * pair_tokens_per_side * dpo_epochs, dpo_rate),
        Phase("eval", (n_models_evaluated - 1) * n_eval_prompts * eval_new_tokens, gen_tokens_per_s),
    ]


def data_parallel(phases: list[Phase], *, n_gpus: int, efficiency: float) -> list[Phase]:
    """The phases on ``n_gpus`` data-parallel GPUs: each rate times ``n_gpus * efficiency``.

    ``efficiency`` (in (0, 1]) is the measured scaling efficiency, tokens/s on N GPUs over N times one
    GPU's (the GPU gate's two-rank check reports it); no default, since an assumed 1.0 would under-price the run.
    The price per hour of the projection is then the price of all ``n_gpus``.
    """
    if not isinstance(n_gpus, int) or isinstance(n_gpus, bool) or n_gpus < 1:
        raise ConfigError(f"n_gpus = {n_gpus!r} is invalid; allowed: an integer >= 1")
    _positive("efficiency (measured)", efficiency)
    if efficiency > 1:
        raise ConfigError(f"efficiency = {efficiency!r} is invalid; allowed: a measured number in (0, 1]")
    return [Phase(p.name, p.tokens, p.tokens_per_s * n_gpus * efficiency) for p in phases]


@dataclass(frozen=True)
class GateRates:
    """Throughputs the GPU gate measured on its model of ``params_b`` billion parameters."""

    train_tokens_per_s: float
    gen_tokens_per_s: float
    params_b: float
    device: str
    verdict: str
    path: str
    #: the TrainSpec speed levers the training rate was measured with (check 9's ``train_levers``); None in a
    #: report that does not record them
    levers: dict[str, Any] | None = None
    #: Unsloth's steady SFT tokens/s over peft's on the same model and rows (check 10, when it passed and
    #: recorded both); None where the gate did not measure it. Check 9's training rate is always peft's.
    unsloth_speedup: float | None = None
    #: the same ratio for DPO on check 4's pairs (check 10's DPO figures); None where the gate did not measure it
    unsloth_dpo_speedup: float | None = None

    def scaled_to(self, params_b: float) -> dict[str, float]:
        """The rates at ``params_b`` billion parameters: ``rate * self.params_b / params_b``."""
        _positive("params_b", params_b)
        ratio = self.params_b / params_b
        return {"train_tokens_per_s": self.train_tokens_per_s * ratio, "gen_tokens_per_s": self.gen_tokens_per_s * ratio}


def read_gate_rates(path: str | os.PathLike[str]) -> GateRates:
    """The measured rates of a ``gate-report.json`` (``pytest -m gpu``), as its check 9 records them.

    Check 9 takes the training (check 3 / 8) and generation (check 7 / 8) tokens/s of the largest model
    the gate measured and records them with that model's size in ``scaling`` (``x 7.616B / ...``).
    """
    file = Path(path).expanduser()
    if file.is_dir():
        raise InputError(f"budget.gate_report: {file} is a directory; name the gate-report.json inside it "
                         "(the GPU gate writes it to CLEANROOM_GATE_DIR)")
    if not file.is_file():
        raise MissingFileError(f"budget.gate_report: {file} does not exist; run the GPU gate (tox -e gpu) to write it")
    fix = "point budget.gate_report (--gate-report) at the gate-report.json that `pytest -m gpu` wrote"
    try:
        report = loads(file.read_bytes(), strict=False)  # the one JSON reader, lenient as backend.gate_evidence
    except ValueError as exc:
        raise InputError(f"budget.gate_report: {file} is not valid JSON ({exc}); {fix}") from None
    if (problem := _gate_report_problem(report)) is not None:
        raise InputError(f"budget.gate_report: {file} is not a gate-report.json: {problem}; {fix}")
    figures = {c["check"]: c.get("figures") or {} for c in report["checks"]}
    fig = figures.get("9_cost", {})
    found = re.search(r"x ([0-9.]+)B /", str(fig.get("scaling", "")))
    measured: dict[str, Any] = {"measured_train_tokens_per_s": fig.get("measured_train_tokens_per_s"),
                                "measured_gen_tokens_per_s": fig.get("measured_gen_tokens_per_s"),
                                "scaling (the measured model's size)": fig.get("measured_params_b")
                                or (float(found.group(1)) if found else None)}
    missing = [name for name, value in measured.items() if not value]
    if missing:
        raise ConfigError(f"budget.gate_report: {file} check 9_cost lacks {', '.join(missing)}; run the whole GPU "
                          "gate (pytest -m gpu verification/test_gpu_gate.py): checks 3, 7 and 8 feed check 9")
    for name, value in measured.items():
        _positive(f"{file.name} {name} (measured)", value)
    train, gen, params = (float(v) for v in measured.values())
    context = report.get("context") or {}
    levers = fig.get("train_levers")
    return GateRates(train_tokens_per_s=train, gen_tokens_per_s=gen, params_b=params,
                     device=str(context.get("device", "unknown device")), verdict=str(report.get("verdict", "?")),
                     path=str(file), levers=dict(levers) if isinstance(levers, dict) else None,
                     unsloth_speedup=_unsloth_speedup(report["checks"], "sft"),
                     unsloth_dpo_speedup=_unsloth_speedup(report["checks"], "dpo"))


def _gate_report_problem(report: Any) -> str | None:
    """What in a parsed gate report is not what the GPU gate writes (an object whose ``checks`` is a list of
    objects, each with a ``check`` name), or None."""
    if not isinstance(report, dict):
        return f"it holds {type(report).__name__}, not a JSON object"
    if "checks" not in report:
        return 'it has no "checks" key'
    checks = report["checks"]
    if not isinstance(checks, list):
        return f'"checks" is {type(checks).__name__}, not a list'
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or not isinstance(check.get("check"), str):
            return f'"checks"[{i}] has no "check" name'
    return None


def unsloth_check(checks: Any) -> dict[str, Any] | None:
    """Gate check 10 (``10_unsloth``) among a report's *checks*, or None where the report has none."""
    if not isinstance(checks, list):
        return None
    return next((c for c in checks if isinstance(c, dict) and c.get("check") == "10_unsloth"), None)


def _unsloth_speedup(checks: list[Any], stage: str) -> float | None:
    """Check 10's steady Unsloth tokens/s over peft's for *stage* (``UNSLOTH_FIGURES``), when the check passed
    and both are positive numbers."""
    check = unsloth_check(checks)
    if check is None or check.get("status") != "passed":  # as backend.gate_evidence reads it
        return None
    f = check.get("figures") or {}
    names = UNSLOTH_FIGURES[stage]
    u, p = (_positive_number(f.get(k)) for k in (names.unsloth_steady, names.peft_steady))
    return u / p if u is not None and p is not None else None


def _positive_number(value: Any) -> float | None:
    """*value* as a float when it is a positive int or float (not a bool), else None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


__all__ = ["DEFAULT_PRICE_PER_HOUR", "UNSLOTH_FIGURES", "CostProjection", "GateRates", "Phase", "UnslothFigures",
           "data_parallel", "project_cost", "read_gate_rates", "stage1_phases", "unsloth_check"]

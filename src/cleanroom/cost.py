"""Projected wall-clock hours and dollars of a Stage 1 run, from measured throughputs.

Every phase is a token count divided by a measured rate: ``hours = tokens / (tokens_per_s * 3600)``,
``dollars = hours * price_per_hour``. The Stage 1 phases and their token counts:

* generation (baseline eval, SFT data, preference sampling, final evals): ``prompts * samples *
  new_tokens`` at the measured *generation* tokens/s (decode-bound, so prompt tokens are not counted);
* SFT: ``examples * tokens_per_example * epochs`` at the measured *training* tokens/s;
* DPO: ``pairs * 2 * tokens_per_side * epochs`` (chosen and rejected are both forwarded) at the
  measured DPO tokens/s, or, if DPO was not measured, the SFT rate times ``DPO_THROUGHPUT_FACTOR``
  (the extra no-grad reference forward costs about a third of a forward+backward: 1 / (1 + 1/3)).

Fixed overheads (model loads, merges, checkpoint writes) enter as ``overhead_s``. The default price
is $1.74/hour for the reference single 80 GB A100/H100.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cleanroom.errors import ConfigError

DEFAULT_PRICE_PER_HOUR = 1.74
DPO_THROUGHPUT_FACTOR = 0.75


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
    """Projected ``hours`` and ``dollars``; ``phase_hours`` per phase (overhead included as its own key)."""

    hours: float
    dollars: float
    price_per_hour: float
    phase_hours: Mapping[str, float]

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
    total = sum(hours.values())
    return CostProjection(hours=total, dollars=total * price_per_hour, price_per_hour=float(price_per_hour),
                          phase_hours=hours)


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
        Phase("sft_data", n_pool_prompts * sft_samples_per_prompt * eval_new_tokens, gen_tokens_per_s),
        Phase("sft", n_sft_examples * sft_tokens_per_example * sft_epochs, train_tokens_per_s),
        Phase("pairs", n_pair_prompts * pair_samples_per_prompt * pair_new_tokens, gen_tokens_per_s),
        Phase("dpo", n_pairs * 2 * pair_tokens_per_side * dpo_epochs, dpo_rate),
        Phase("eval", (n_models_evaluated - 1) * n_eval_prompts * eval_new_tokens, gen_tokens_per_s),
    ]


__all__ = ["DEFAULT_PRICE_PER_HOUR", "CostProjection", "Phase", "project_cost", "stage1_phases"]

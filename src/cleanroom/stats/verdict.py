"""The words a comparison ends in, and the minimum-n rule that guards them."""

from __future__ import annotations

import numbers

from cleanroom.errors import StatisticsError

DEFAULT_MIN_N = 200


def verdict_for(difference: float, p_value: float, mde: float, *, alpha: float = 0.05) -> str:
    """``improved`` / ``regressed`` when the (family-adjusted) p < α, by the sign of B − A;
    otherwise ``no detectable difference (MDE = x)``, so a null never reads as "equal"."""
    if not 0 <= p_value <= 1:
        raise StatisticsError(f"verdict_for: p_value={p_value!r} is outside [0, 1]")
    if p_value < alpha and difference > 0:
        return "improved"
    if p_value < alpha and difference < 0:
        return "regressed"
    return f"no detectable difference (MDE = {mde:.3f})"


def require_min_n(n: int, *, min_n: int = DEFAULT_MIN_N, override_reason: str | None = None, what: str = "comparison") -> str | None:
    """Refuse a verdict on fewer than ``max(min_n, 200)`` paired keys unless a reason is given.

    ``min_n`` may raise the bar above :data:`DEFAULT_MIN_N` but never lower it on its own: a
    ``min_n`` below 200 is itself an override and needs a non-empty ``override_reason`` whatever
    n is (the same rule as ``eval.min_n`` in the run config). Returns the reason when the verdict
    rests on it (n below ``max(min_n, 200)``), to be recorded with the result; None otherwise.
    At n = 200 and a 5-point true gap a paired test finds it about half the time; below that a
    verdict is mostly noise.
    """
    if isinstance(min_n, bool) or not isinstance(min_n, numbers.Integral) or min_n < 1:
        raise StatisticsError(f"{what}: min_n={min_n!r}; expected a whole number >= 1 (default {DEFAULT_MIN_N})")
    reason = str(override_reason).strip() if override_reason is not None else ""
    if min_n < DEFAULT_MIN_N and not reason:
        raise StatisticsError(
            f"{what}: min_n={min_n} (--min-n {min_n}) is below the floor of {DEFAULT_MIN_N} paired keys; lowering it "
            "is an override — add --override-reason TEXT (override_reason=...) to record why a small-n verdict is acceptable"
        )
    if n >= max(min_n, DEFAULT_MIN_N):
        return None
    if not reason:
        raise StatisticsError(
            f"{what}: n={n} paired keys is below the minimum of {min_n} for a verdict; evaluate on more "
            "prompts, or add --override-reason TEXT (override_reason=...) to record why a small-n verdict is acceptable"
        )
    return reason

"""The words a comparison ends in, and the minimum-n rule that guards them."""

from __future__ import annotations

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
    """Refuse a verdict on fewer than ``min_n`` paired keys unless a reason is given.

    Returns the override reason (to be recorded in the result) or None when n is large enough.
    At n = 200 and a 5-point true gap a paired test finds it about half the time; below that a
    verdict is mostly noise.
    """
    if n >= min_n:
        return None
    if override_reason is None or not str(override_reason).strip():
        raise StatisticsError(
            f"{what}: n={n} paired keys is below the minimum of {min_n} for a verdict; evaluate on more "
            "prompts, or pass override_reason (--override-reason TEXT) to record why a small-n verdict is acceptable"
        )
    return str(override_reason).strip()

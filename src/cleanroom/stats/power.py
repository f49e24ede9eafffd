"""Power and minimum detectable effect (MDE) for the paired comparisons cleanroom runs.

Every comparison reports its MDE, so "no detectable difference" says how large a difference the
data could have seen. Conventions: two-sided α = 0.05, power 0.80, effects as ``B − A``.
"""

from __future__ import annotations

import math

from scipy import optimize
from scipy import stats as sps

from cleanroom.errors import StatisticsError


def _check(alpha: float, power: float) -> tuple[float, float]:
    if not 0 < alpha < 1:
        raise StatisticsError(f"alpha={alpha!r} is outside (0, 1); the convention is 0.05")
    if not 0 < power < 1:
        raise StatisticsError(f"power={power!r} is outside (0, 1); the convention is 0.80")
    return float(alpha), float(power)


def power_paired_binary(n: int, difference: float, discordance: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided McNemar test (Connor 1987, Biometrics 43:207, normal approximation).

    With ψ = P(discordant pair) and δ = p_B − p_A (so |δ| ≤ ψ):

        power = Φ( (|δ|·√n − z_{1−α/2}·√ψ) / √(ψ − δ²) ).

    The mid-p McNemar used for verdicts tracks this closely (verified by simulation).
    """
    alpha, _ = _check(alpha, 0.5)
    d = abs(float(difference))
    psi = float(discordance)
    if n < 1 or not 0 < psi <= 1 or d > psi:
        raise StatisticsError(
            f"power_paired_binary: need n >= 1, 0 < discordance <= 1 and |difference| <= discordance; "
            f"got n={n}, difference={difference}, discordance={discordance}"
        )
    z_a = sps.norm.ppf(1 - alpha / 2)
    spread = psi - d * d
    num = d * math.sqrt(n) - z_a * math.sqrt(psi)
    if spread <= 0:
        return 1.0 if num > 0 else 0.0
    return float(sps.norm.cdf(num / math.sqrt(spread)))


def required_n_paired_binary(
    difference: float, discordance: float, *, alpha: float = 0.05, power: float = 0.80
) -> int:
    """Pairs needed to detect ``difference`` with McNemar (Connor 1987):

        n = ⌈ (z_{1−α/2}·√ψ + z_{power}·√(ψ − δ²))² / δ² ⌉.

    Example: δ = 0.05, ψ = 0.15 → (1.95996·0.38730 + 0.84162·0.38406)²/0.0025 = 468.57 → 469 pairs.
    """
    alpha, power = _check(alpha, power)
    d = abs(float(difference))
    psi = float(discordance)
    if not 0 < d <= psi <= 1:
        raise StatisticsError(
            f"required_n_paired_binary: need 0 < |difference| <= discordance <= 1; got difference="
            f"{difference}, discordance={discordance} (a difference needs at least that many discordant pairs)"
        )
    z_a, z_b = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)
    return int(math.ceil((z_a * math.sqrt(psi) + z_b * math.sqrt(psi - d * d)) ** 2 / (d * d) - 1e-9))


def mde_paired_binary(n: int, discordance: float, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """Smallest |p_B − p_A| that n pairs detect with the given power (inverts Connor's formula).

    A true difference δ forces at least |δ| discordant pairs, so the planning discordance is
    ``max(ψ_observed, δ)``; this keeps the MDE positive and finite when no pair was discordant
    (it then equals the δ at which "every discordant pair went one way" is detectable, ≈ z²/n).
    """
    alpha, power = _check(alpha, power)
    if int(n) != n or n < 1:
        raise StatisticsError(f"mde_paired_binary: n={n!r}; needs at least one pair")
    if not 0 <= discordance <= 1:
        raise StatisticsError(f"mde_paired_binary: discordance={discordance!r} is outside [0, 1]")

    def gap(d: float) -> float:
        return power_paired_binary(int(n), d, max(discordance, d), alpha=alpha) - power

    if gap(1.0) < 0:  # even "every pair flipped one way" is not detectable at this n
        return 1.0
    return float(optimize.brentq(gap, 1e-12, 1.0, xtol=1e-12))


def mde_paired_mean(n: int, sd_difference: float, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """MDE of a paired t test on graded scores: ``d_z* · s_d``, with d_z* solved from the exact
    noncentral-t power by ``statsmodels.stats.power.TTestPower``."""
    from statsmodels.stats.power import TTestPower  # heavy optional: statsmodels

    alpha, power = _check(alpha, power)
    if n < 3 or not sd_difference > 0:
        raise StatisticsError(f"mde_paired_mean: needs n >= 3 and sd_difference > 0; got n={n}, sd={sd_difference}")
    dz = TTestPower().solve_power(effect_size=None, nobs=int(n), alpha=alpha, power=power)
    return float(dz) * float(sd_difference)


def required_n_paired_mean(effect_size_dz: float, *, alpha: float = 0.05, power: float = 0.80) -> int:
    """Pairs needed for a paired t test to detect standardised effect d_z (``TTestPower``)."""
    from statsmodels.stats.power import TTestPower  # heavy optional: statsmodels

    alpha, power = _check(alpha, power)
    if not effect_size_dz != 0 or not math.isfinite(effect_size_dz):
        raise StatisticsError(f"required_n_paired_mean: effect_size_dz={effect_size_dz!r} must be finite and non-zero")
    n = TTestPower().solve_power(effect_size=abs(effect_size_dz), nobs=None, alpha=alpha, power=power)
    return int(math.ceil(float(n) - 1e-9))


def mde_from_se(se: float, df: int, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """MDE of a Wald-t test with standard error ``se`` and ``df`` degrees of freedom:
    ``(t_{1−α/2, df} + t_{power, df}) · se`` (used for cluster-robust instruction-level tests)."""
    alpha, power = _check(alpha, power)
    if df < 1 or not se > 0:
        raise StatisticsError(f"mde_from_se: needs df >= 1 and se > 0; got df={df}, se={se}")
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * se)

"""Confidence intervals for one score: Wilson, Clopper–Pearson, t, BCa bootstrap, clustered.

Every function returns an :class:`Interval` and refuses input it cannot decide (``n = 0``, NaN
scores) with a :class:`~cleanroom.errors.StatisticsError`; none returns NaN or a zero-width interval
silently. Pass/fail scores default to Wilson (good coverage down to small n and at p near 0 or 1,
where the Wald interval collapses to zero width).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeAlias

import numpy as np
from scipy import stats as sps

from cleanroom.errors import StatisticsError

#: Scores of one system, one per unit: a sequence or a 1-D array.
Scores: TypeAlias = Sequence[float] | np.ndarray
#: The randomness of a resampling method: an explicit Generator, or an int seed for a fresh one.
SeedOrGenerator: TypeAlias = np.random.Generator | int


def as_generator(rng: SeedOrGenerator) -> np.random.Generator:
    """``rng`` itself when it is a Generator, else ``default_rng(int(rng))``: never the global RNG."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))


class Interval(NamedTuple):
    """A point estimate with a two-sided interval; ``method`` names the formula, ``n`` the units."""

    estimate: float
    low: float
    high: float
    method: str
    n: int


def check_confidence(confidence: float) -> float:
    if not 0.0 < float(confidence) < 1.0:
        raise StatisticsError(
            f"confidence={confidence!r} is outside (0, 1); pass e.g. 0.95 for a 95% interval"
        )
    return float(confidence)


def _check_counts(successes: int, n: int, what: str) -> tuple[int, int]:
    if int(n) != n or int(successes) != successes:
        raise StatisticsError(f"{what}: successes={successes!r} and n={n!r} must be integers")
    n, successes = int(n), int(successes)
    if n <= 0:
        raise StatisticsError(
            f"{what}: n={n}; an interval needs at least one scored example — score some examples first"
        )
    if not 0 <= successes <= n:
        raise StatisticsError(f"{what}: successes={successes} is outside [0, n={n}]")
    return successes, n


def wilson_bounds(successes: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score bounds (Wilson 1927; Newcombe 1998 method 3).

    ``centre = (p̂ + z²/2n) / (1 + z²/n)``, ``half = z/(1 + z²/n) · sqrt(p̂(1−p̂)/n + z²/4n²)``.
    Used by :func:`wilson_interval` and by the coverage simulation, so both exercise one formula.
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = (z / denom) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (the default for pass/fail accuracy).

    Agrees with ``statsmodels.stats.proportion.proportion_confint(method="wilson")``. At 0/n or n/n
    the interval still has positive width (e.g. 0/200 → [0, 0.0188]), unlike Wald's [0, 0].
    """
    successes, n = _check_counts(successes, n, "wilson_interval")
    z = float(sps.norm.ppf(0.5 + check_confidence(confidence) / 2))
    low, high = wilson_bounds(np.array(successes), np.array(n), z)
    return Interval(successes / n, float(low), float(high), "wilson", n)


def clopper_pearson_interval(successes: int, n: int, *, confidence: float = 0.95) -> Interval:
    """Exact (Clopper–Pearson 1934) interval from beta quantiles; conservative by construction.

    ``low = Beta(α/2; k, n−k+1)``, ``high = Beta(1−α/2; k+1, n−k)``, with 0 and 1 at the edges.
    Computed by ``statsmodels`` (``method="beta"``).
    """
    from statsmodels.stats.proportion import proportion_confint  # heavy optional: statsmodels

    successes, n = _check_counts(successes, n, "clopper_pearson_interval")
    alpha = 1 - check_confidence(confidence)
    low, high = proportion_confint(successes, n, alpha=alpha, method="beta")
    return Interval(successes / n, float(low), float(high), "clopper-pearson", n)


def is_constant(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """True where ``x`` is one value along ``axis`` up to rounding (range ≤ 1e-12 of its magnitude):
    then a sample standard deviation or a bootstrap is all rounding noise, and an interval would
    have zero width. Callers raise on it rather than report such an interval."""
    x = np.asarray(x, dtype=float)
    return np.asarray(np.ptp(x, axis=axis) <= 1e-12 * np.maximum(1.0, np.abs(x).max(axis=axis)))


def _as_scores(values: Sequence[float] | np.ndarray, what: str, min_n: int = 2) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise StatisticsError(f"{what}: expected a 1-D sequence of scores, got shape {x.shape}")
    if x.size < min_n:
        raise StatisticsError(
            f"{what}: n={x.size}; this interval needs at least {min_n} scores (a spread cannot be "
            "estimated from fewer) — score more examples"
        )
    if not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise StatisticsError(f"{what}: score {bad} is {x[bad]!r}; scores must be finite numbers")
    return x


def t_interval(values: Sequence[float] | np.ndarray, *, confidence: float = 0.95) -> Interval:
    """Student-t interval for the mean of graded scores: ``x̄ ± t(1−α/2; n−1) · s/√n``.

    Refuses constant scores (s = 0 would give a zero-width interval that claims certainty it
    does not have); use :func:`wilson_interval` for pass/fail or score more varied examples.
    """
    x = _as_scores(values, "t_interval")
    conf = check_confidence(confidence)
    sd = float(np.std(x, ddof=1))
    if is_constant(x):
        raise StatisticsError(
            f"t_interval: all {x.size} scores equal {x[0]!r}; the t interval would have zero width — "
            "for pass/fail scores use wilson_interval"
        )
    half = float(sps.t.ppf(0.5 + conf / 2, x.size - 1)) * sd / np.sqrt(x.size)
    m = float(x.mean())
    return Interval(m, m - half, m + half, "t", int(x.size))


def bca_interval(
    values: Scores, *, confidence: float = 0.95, n_resamples: int = 10_000, rng: SeedOrGenerator = 0
) -> Interval:
    """Bias-corrected and accelerated bootstrap interval of the mean (Efron 1987; Efron &
    Tibshirani 1993, §14.3), computed by ``scipy.stats.bootstrap(method="BCa")``.

    ``rng`` is an explicit Generator or an int seed (never the global RNG).
    """
    x = _as_scores(values, "bca_interval", min_n=3)
    conf = check_confidence(confidence)
    if np.ptp(x) == 0.0:
        raise StatisticsError(
            f"bca_interval: all {x.size} scores equal {x[0]!r}; every resample has the same mean, "
            "so the interval would have zero width — score more varied examples"
        )
    res = sps.bootstrap(
        (x,), np.mean, confidence_level=conf, n_resamples=int(n_resamples), method="BCa",
        rng=as_generator(rng), vectorized=True,
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Interval(float(x.mean()), low, high, "bca-bootstrap", int(x.size))


def clustered_mean_interval(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[object] | np.ndarray,
    *,
    confidence: float = 0.95,
) -> Interval:
    """Mean of scores that come in clusters (instructions within one prompt), cluster-robust.

    Ratio estimator ``θ̂ = ΣT_c / Σm_c`` with ``T_c`` the cluster total and ``m_c`` its size; the
    sandwich variance with the small-cluster correction ``C/(C−1)`` (Cameron & Miller 2015, §II.C):

        Var(θ̂) = C/(C−1) · Σ_c (T_c − θ̂ m_c)² / (Σ_c m_c)²,

    and a t(C−1) critical value. With intra-cluster correlation ρ and cluster size m the naive
    i.i.d. variance is too small by the design effect ``1 + (m−1)ρ``; this one is not.
    Needs at least 2 clusters; if every cluster has the same mean the residuals vanish and the
    interval would have zero width, so that case raises (use a count-based interval instead).
    """
    x = np.asarray(values, dtype=float)
    groups = np.asarray(clusters)
    if x.ndim != 1 or groups.shape != x.shape:
        raise StatisticsError(
            f"clustered_mean_interval: values {x.shape} and clusters {groups.shape} must be 1-D of equal length"
        )
    x = _as_scores(x, "clustered_mean_interval", min_n=2)
    _, inverse = np.unique(groups, return_inverse=True)
    est, se, c = clustered_mean_se(x, inverse)
    if c < 2:
        raise StatisticsError(
            f"clustered_mean_interval: {c} cluster(s); a cluster-robust interval needs at least 2"
        )
    if se == 0.0:
        raise StatisticsError(
            "clustered_mean_interval: every cluster has the same mean, so the cluster-robust standard "
            "error is 0 and the interval would have zero width — report a count-based interval instead"
        )
    half = float(sps.t.ppf(0.5 + check_confidence(confidence) / 2, c - 1)) * se
    return Interval(est, est - half, est + half, "clustered-t", int(x.size))


def clustered_mean_se(x: np.ndarray, inverse: np.ndarray) -> tuple[float, float, int]:
    """(estimate, cluster-robust SE with C/(C−1) correction, C) for scores ``x`` in clusters
    ``inverse`` (integer labels 0..C−1). See :func:`clustered_mean_interval` for the formula."""
    c = int(inverse.max()) + 1 if inverse.size else 0
    totals = np.bincount(inverse, weights=x, minlength=c)
    sizes = np.bincount(inverse, minlength=c).astype(float)
    big_n = sizes.sum()
    est = float(totals.sum() / big_n)
    if c < 2:
        return est, 0.0, c
    resid = totals - est * sizes
    var = c / (c - 1) * float(np.sum(resid * resid)) / (big_n * big_n)
    return est, float(np.sqrt(var)), c

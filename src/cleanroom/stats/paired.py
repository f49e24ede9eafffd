"""Paired comparisons of two systems scored on the same keys.

Pass/fail scores: McNemar (exact and mid-p), the Newcombe hybrid-score interval for the difference,
discordant counts and Cohen's h. Graded scores: paired t with d_z, Wilcoxon signed-rank as a
robustness check, and a vectorised paired bootstrap of the mean difference.

Pairing is what makes a 5-point gap at n = 200 detectable: the variance of a paired difference
is ``(b + c)/n²``-ish (only discordant pairs carry information), against ``2p(1−p)/n`` unpaired.
Differences are always ``B − A`` (positive = B better).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as sps

from cleanroom.errors import StatisticsError
from cleanroom.stats.intervals import (
    Scores,
    SeedOrGenerator,
    as_generator,
    check_confidence,
    is_constant,
    wilson_bounds,
)
from cleanroom.stats.power import mde_paired_mean
from cleanroom.stats.verdict import DEFAULT_MIN_N, require_min_n, verdict_for

_BOOT_CHUNK = 48  # resamples per chunk: fixed (not machine-dependent), so results are reproducible


@dataclass(frozen=True)
class PairedAccuracy:
    """Two systems' accuracies on the same n keys and their difference p_B − p_A with its interval:
    what every paired pass/fail comparison reports (:class:`PairedBinaryResult`, ``eval compare``'s
    :class:`~cleanroom.stats.compare.ComparisonRow`)."""

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairedBinaryResult(PairedAccuracy):
    """McNemar comparison of pass/fail scores on the same n keys (difference = p_B − p_A)."""

    only_a: int  # discordant: A passed, B failed
    only_b: int  # discordant: B passed, A failed
    p_exact: float
    p_midp: float
    cohens_h: float
    method: str


class BootstrapResult(NamedTuple):
    """Percentile bootstrap interval of a mean; ``seed``/``rng_state`` reproduce the draws."""

    estimate: float
    low: float
    high: float
    n_resamples: int
    seed: int | None
    rng_state: dict[str, Any]


class PairedGradedResult(NamedTuple):
    """Paired t (with d_z), Wilcoxon signed-rank and bootstrap CI for graded scores (B − A), with
    the paired-t MDE and the verdict it supports (``override_reason`` set when n < the minimum)."""

    n: int
    mean_a: float
    mean_b: float
    difference: float
    t_low: float
    t_high: float
    p_t: float
    d_z: float
    p_wilcoxon: float
    bootstrap: BootstrapResult
    mde: float
    verdict: str
    override_reason: str | None


def _as_pair(a: Sequence[Any] | np.ndarray, b: Sequence[Any] | np.ndarray, what: str, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a)
    y = np.asarray(b)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise StatisticsError(
            f"{what}: A and B must be 1-D and paired (same length); got shapes {x.shape} and {y.shape}"
        )
    if x.size == 0:
        raise StatisticsError(f"{what}: n=0; nothing to compare — score some examples first")
    if dtype is bool:
        for name, arr in (("A", x), ("B", y)):
            if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
                raise StatisticsError(f"{what}: scores of {name} must be pass/fail (bool or 0/1)")
        return x.astype(bool), y.astype(bool)
    x, y = x.astype(float), y.astype(float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise StatisticsError(f"{what}: scores must be finite numbers (found NaN or inf)")
    return x, y


def cohens_h(p_a: float, p_b: float) -> float:
    """Cohen's h = 2·asin(√p_B) − 2·asin(√p_A) (Cohen 1988, §6.2): 0.2 small, 0.5 medium, 0.8 large."""
    return float(2 * np.arcsin(np.sqrt(p_b)) - 2 * np.arcsin(np.sqrt(p_a)))


def midp_mcnemar(only_a: np.ndarray | int, only_b: np.ndarray | int) -> np.ndarray | float:
    """Two-sided mid-p McNemar (Fagerland, Lydersen & Laake 2013, BMC Med Res Methodol 13:91).

    With m = b + c discordant pairs and k = min(b, c), under H0 ``X ~ Binomial(m, ½)``:
    ``p_mid = 2·P(X ≤ k) − P(X = k)`` (the exact p minus the point probability), capped at 1;
    m = 0 gives 1. Vectorised, so the type-I and power simulations run this very function.
    """
    b = np.asarray(only_a)
    c = np.asarray(only_b)
    m = b + c
    k = np.minimum(b, c)
    p = 2 * sps.binom.cdf(k, m, 0.5) - sps.binom.pmf(k, m, 0.5)
    p = np.where(m == 0, 1.0, np.minimum(p, 1.0))
    return float(p) if p.ndim == 0 else p


def newcombe_paired_interval(both: int, only_a: int, only_b: int, neither: int, z: float) -> tuple[float, float]:
    """Newcombe (1998, Stat Med 17:2623, method 10) hybrid-score interval for p_B − p_A.

    With Wilson bounds (l_A, u_A), (l_B, u_B) of the two marginal accuracies, ``A = both·neither −
    only_a·only_b`` and M the product of the four margins, Newcombe's corrected phi is
    ``φ = (A − n/2)/√M`` if A > n/2, ``0`` if 0 ≤ A ≤ n/2 (or a margin is empty), ``A/√M`` if A < 0:

        δ = √((p_B − l_B)² − 2φ(p_B − l_B)(u_A − p_A) + (u_A − p_A)²),  low  = Δ − δ
        ε = √((u_B − p_B)² − 2φ(u_B − p_B)(p_A − l_A) + (p_A − l_A)²),  high = Δ + ε

    Chosen over Wald-with-continuity because it keeps positive width with no discordant pairs
    and at all-pass/all-fail, and has near-nominal coverage at small n (Newcombe's Table II).
    """
    n = both + only_a + only_b + neither
    p_a = (both + only_a) / n
    p_b = (both + only_b) / n
    (l_a, l_b), (u_a, u_b) = wilson_bounds(np.array([both + only_a, both + only_b]), np.array([n, n]), z)
    margins = float(both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = float(both * neither - only_a * only_b)
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:  # Newcombe's correction: positive association is shrunk by n/2
        phi = (cross - n / 2 if cross > 0 else cross) / np.sqrt(margins)
    d = p_b - p_a
    delta = np.sqrt(max((p_b - l_b) ** 2 - 2 * phi * (p_b - l_b) * (u_a - p_a) + (u_a - p_a) ** 2, 0.0))
    eps = np.sqrt(max((u_b - p_b) ** 2 - 2 * phi * (u_b - p_b) * (p_a - l_a) + (p_a - l_a) ** 2, 0.0))
    return float(max(d - delta, -1.0)), float(min(d + eps, 1.0))


def compare_paired_binary(
    a: Sequence[Any] | np.ndarray, b: Sequence[Any] | np.ndarray, *, confidence: float = 0.95
) -> PairedBinaryResult:
    """Compare pass/fail scores of systems A and B on the same keys (position i = key i).

    Exact McNemar p comes from ``statsmodels.stats.contingency_tables.mcnemar(exact=True)``; the
    mid-p (the one verdicts use: exact is conservative, mid-p holds α closely) from
    :func:`midp_mcnemar`; the CI from :func:`newcombe_paired_interval`.
    Worked example (Cavo et al. 2012, in Fagerland, Lydersen & Laake 2017, ch. 8): both=59,
    only_a=6, only_b=16, neither=80 → difference 10/161 = +0.0621, CI (+0.0046, +0.1186).
    """
    from statsmodels.stats.contingency_tables import mcnemar  # heavy optional: statsmodels

    x, y = _as_pair(a, b, "compare_paired_binary", bool)
    z = float(sps.norm.ppf(0.5 + check_confidence(confidence) / 2))
    n = int(x.size)
    both = int(np.sum(x & y))
    only_a = int(np.sum(x & ~y))
    only_b = int(np.sum(~x & y))
    neither = n - both - only_a - only_b
    low, high = newcombe_paired_interval(both, only_a, only_b, neither, z)
    if only_a + only_b == 0:
        p_exact = 1.0
    else:
        p_exact = float(mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue)
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    return PairedBinaryResult(
        n=n, accuracy_a=p_a, accuracy_b=p_b, difference=p_b - p_a, ci_low=low, ci_high=high,
        only_a=only_a, only_b=only_b, p_exact=p_exact, p_midp=float(midp_mcnemar(only_a, only_b)),
        cohens_h=cohens_h(p_a, p_b), method="mid-p McNemar; Newcombe hybrid-score CI (method 10)",
    )


def paired_bootstrap(
    differences: Scores, *, n_resamples: int = 10_000, confidence: float = 0.95, rng: SeedOrGenerator = 0
) -> BootstrapResult:
    """Percentile bootstrap of the mean paired difference (Efron & Tibshirani 1993, §13.3).

    Resampling keys with replacement resamples both systems together, which is what pairs them.
    Vectorised (see :func:`bootstrap_means`). ``rng`` is an explicit Generator or an int seed; the
    result records the seed (if an int was given) and the generator state before the first draw,
    which reproduce it. Constant differences are refused: every resample would have the same mean,
    giving a zero-width interval (which rounding can even place beside the estimate).
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise StatisticsError(f"paired_bootstrap: needs a 1-D array of at least 2 differences, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise StatisticsError("paired_bootstrap: differences must be finite (found NaN or inf)")
    if is_constant(d):
        raise StatisticsError(
            f"paired_bootstrap: all {d.size} differences equal {d[0]!r}; every resample has the same mean, so "
            "the interval would have zero width — a bootstrap needs differences that vary"
        )
    if int(n_resamples) < 100:
        raise StatisticsError(f"paired_bootstrap: n_resamples={n_resamples}; use at least 100 (default 10,000)")
    conf = check_confidence(confidence)
    seed = None if isinstance(rng, np.random.Generator) else int(rng)
    gen = as_generator(rng)
    state = dict(gen.bit_generator.state)
    means = bootstrap_means(d, int(n_resamples), gen)
    alpha = 1 - conf
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(float(d.mean()), float(low), float(high), int(n_resamples), seed, state)


def bootstrap_means(x: np.ndarray, n_resamples: int, gen: np.random.Generator) -> np.ndarray:
    """``n_resamples`` means of ``x`` resampled with replacement.

    A resample's mean depends only on how often each *distinct* value was drawn, and those counts
    are ``Multinomial(n, freq/n)``. So when ``x`` has few distinct values K (pass/fail differences
    have 3) we draw the (R × K) counts and matrix-multiply by the values: the same distribution as
    index resampling at O(R·K) instead of O(R·n). Otherwise: integer indices, a fixed-size chunk of
    resamples at a time, one gather and one row sum per chunk.
    """
    n = x.size
    values, freq = np.unique(x, return_counts=True)
    if values.size * 16 <= n:
        counts = gen.multinomial(n, freq / n, size=n_resamples)
        return (counts @ values) / n
    out = np.empty(n_resamples)
    buf = np.empty((_BOOT_CHUNK, n))
    for start in range(0, n_resamples, _BOOT_CHUNK):
        rows = min(_BOOT_CHUNK, n_resamples - start)
        idx = gen.integers(0, n, size=(rows, n))
        np.take(x, idx, out=buf[:rows])
        out[start : start + rows] = buf[:rows].sum(axis=1)
    return out / n


def compare_paired_graded(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    rng: SeedOrGenerator = 0,
    alpha: float = 0.05,
    min_n: int = DEFAULT_MIN_N,
    override_reason: str | None = None,
) -> PairedGradedResult:
    """Compare graded scores (e.g. partial credit in [0, 1]) of A and B on the same keys.

    Paired t via ``scipy.stats.ttest_rel``; CI ``d̄ ± t(1−α/2; n−1)·s_d/√n``; effect size
    ``d_z = d̄ / s_d`` (Cohen 1988; Lakens 2013, eq. 6). Wilcoxon signed-rank via
    ``scipy.stats.wilcoxon`` (zero differences dropped, Wilcoxon 1945); bootstrap via
    :func:`paired_bootstrap`. Refuses n < 3 and constant differences (no spread to test).

    The MDE is that of the paired t test at 80% power and two-sided ``alpha``,
    ``d_z*·s_d`` with d_z* from the noncentral t (:func:`~cleanroom.stats.power.mde_paired_mean`,
    ≈ ``(t_{1−α/2,n−1} + t_{0.8,n−1})·s_d/√n``); the verdict reads the paired-t p against ``alpha``
    (one comparison; for a family, Holm-adjust the ``p_t`` values and call ``verdict_for``).
    Below ``max(min_n, 200)`` pairs a verdict needs ``override_reason`` (see ``require_min_n``).
    """
    x, y = _as_pair(a, b, "compare_paired_graded", float)
    p_t, p_w = (float(p) for p in paired_graded_pvalues(x, y, what="compare_paired_graded"))
    d = y - x
    sd = float(np.std(d, ddof=1))
    conf = check_confidence(confidence)
    override = require_min_n(int(d.size), min_n=min_n, override_reason=override_reason, what="compare_paired_graded")
    mde = mde_paired_mean(int(d.size), sd, alpha=alpha)
    half = float(sps.t.ppf(0.5 + conf / 2, d.size - 1)) * sd / np.sqrt(d.size)
    mean_d = float(d.mean())
    boot = paired_bootstrap(d, n_resamples=n_resamples, confidence=conf, rng=rng)
    return PairedGradedResult(
        n=int(d.size), mean_a=float(x.mean()), mean_b=float(y.mean()), difference=mean_d,
        t_low=mean_d - half, t_high=mean_d + half, p_t=p_t, d_z=mean_d / sd,
        p_wilcoxon=p_w, bootstrap=boot, mde=mde, verdict=verdict_for(mean_d, p_t, mde, alpha=alpha),
        override_reason=override,
    )


def paired_graded_pvalues(
    a: np.ndarray, b: np.ndarray, *, what: str = "paired_graded_pvalues"
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided p-values of B − A along the last axis: paired t (``scipy.stats.ttest_rel``) and
    Wilcoxon signed-rank (``scipy.stats.wilcoxon``, its default method). Vectorised over leading
    axes, so the type-I and power simulations run this very function on (replications, n) arrays.

    Refuses n < 3 and any row whose differences are constant (t undefined: NaN, not a p-value).
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim < 1:
        raise StatisticsError(f"{what}: A and B must be paired arrays of one shape; got {x.shape} and {y.shape}")
    if x.shape[-1] < 3:
        raise StatisticsError(f"{what}: n={x.shape[-1]}; a paired t test needs at least 3 pairs")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise StatisticsError(f"{what}: scores must be finite numbers (found NaN or inf)")
    rows = (y - x).reshape(-1, x.shape[-1])
    constant = is_constant(rows)
    if constant.any():
        i = int(np.argmax(constant))
        where = f"row {i} (flattened): " if x.ndim > 1 else ""
        raise StatisticsError(
            f"{what}: {where}all {rows.shape[1]} differences equal {rows[i, 0]!r}; the paired t statistic is "
            "undefined and its interval would have zero width"
        )
    return np.asarray(sps.ttest_rel(y, x, axis=-1).pvalue), np.asarray(sps.wilcoxon(y, x, axis=-1).pvalue)


def holm(p_values: Sequence[float] | np.ndarray, *, alpha: float = 0.05) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values for a family of comparisons.

    Sorted ascending, ``p_(i)`` becomes ``max_{j≤i} min(1, (m − j + 1)·p_(j))``; reject where the
    adjusted p < α. Computed by ``statsmodels.stats.multitest.multipletests(method="holm")``.
    """
    from statsmodels.stats.multitest import multipletests  # heavy optional: statsmodels

    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise StatisticsError("holm: expected a non-empty 1-D sequence of p-values")
    if not np.all((p >= 0) & (p <= 1)):
        raise StatisticsError(f"holm: p-values must lie in [0, 1]; got {p.tolist()}")
    return np.asarray(multipletests(p, alpha=alpha, method="holm")[1], dtype=float)

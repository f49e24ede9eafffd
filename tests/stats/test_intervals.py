"""Intervals for one score: hand-derived values, agreement with scipy/statsmodels, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from cleanroom.errors import StatisticsError
from cleanroom.stats import (
    bca_interval,
    clopper_pearson_interval,
    clustered_mean_interval,
    t_interval,
    wilson_interval,
)
from cleanroom.stats.intervals import clustered_mean_se

Z = 1.959963984540054


def test_wilson_zero_successes_by_hand():
    """k=0: centre = half = (z²/2n)/(1+z²/n), so low = 0 and high = z²/(n+z²) = 3.84146/203.84146."""
    iv = wilson_interval(0, 200)
    assert iv.low == 0.0
    assert iv.high == pytest.approx(Z**2 / (200 + Z**2), abs=1e-12)
    assert iv.high > 0.0188 and iv.method == "wilson" and iv.n == 200


def test_wilson_all_pass_is_mirror_of_all_fail():
    """Wilson is symmetric under k → n−k: [l, u] for n/n equals [1−u, 1−l] for 0/n, width > 0."""
    lo, hi = wilson_interval(0, 37), wilson_interval(37, 37)
    assert hi.low == pytest.approx(1 - lo.high, abs=1e-12) and hi.high == 1.0
    assert hi.high - hi.low > 0.05


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5000), frac=st.floats(0, 1), conf=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_and_clopper_pearson_agree_with_references(n, frac, conf):
    from statsmodels.stats.proportion import proportion_confint

    k = int(round(frac * n))
    w = wilson_interval(k, n, confidence=conf)
    ref = proportion_confint(k, n, alpha=1 - conf, method="wilson")
    assert abs(w.low - ref[0]) <= 1e-9 and abs(w.high - ref[1]) <= 1e-9
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    assert abs(w.low - ci.low) <= 1e-9 and abs(w.high - ci.high) <= 1e-9
    cp = clopper_pearson_interval(k, n, confidence=conf)
    ex = sps.binomtest(k, n).proportion_ci(confidence_level=conf, method="exact")
    assert abs(cp.low - ex.low) <= 1e-9 and abs(cp.high - ex.high) <= 1e-9
    assert w.high > w.low and cp.high > cp.low


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=200).filter(lambda v: np.ptp(v) > 1e-6))
def test_t_interval_matches_scipy(values):
    iv = t_interval(values)
    ref = sps.ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert abs(iv.low - ref.low) <= 1e-9 * max(1, abs(ref.low))
    assert abs(iv.high - ref.high) <= 1e-9 * max(1, abs(ref.high))


def test_clustered_interval_by_hand():
    """Clusters {1,0}, {1,1}, {0,0}: θ̂ = 3/6; residuals T−θ̂m = 0, 1, −1; Var = 3/2·2/36 = 1/12;
    half = t(0.975; 2)·√(1/12) = 4.302653·0.288675 = 1.242069."""
    iv = clustered_mean_interval([1, 0, 1, 1, 0, 0], ["a", "a", "b", "b", "c", "c"])
    assert iv.estimate == 0.5
    assert iv.high - 0.5 == pytest.approx(sps.t.ppf(0.975, 2) * np.sqrt(1 / 12), abs=1e-12)
    assert iv.method == "clustered-t" and iv.n == 6


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_clustered_se_matches_statsmodels_cluster_robust_ols(sizes, seed):
    """OLS on a constant with cov_type='cluster' uses G/(G−1)·(N−1)/(N−K); with K = 1 that is G/(G−1)."""
    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    y = rng.integers(0, 2, size=groups.size).astype(float)
    est, se, c = clustered_mean_se(y, groups)
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": groups})
    ref_se = float(np.asarray(fit.bse)[0])
    assert c == len(sizes)
    assert abs(est - float(np.asarray(fit.params)[0])) <= 1e-9 and abs(se - ref_se) <= 1e-9
    if se > 0:
        iv = clustered_mean_interval(y, groups)
        assert abs((iv.high - iv.estimate) - sps.t.ppf(0.975, c - 1) * ref_se) <= 1e-9
    else:
        with pytest.raises(StatisticsError, match="zero width"):
            clustered_mean_interval(y, groups)


def test_bca_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(3).exponential(size=80)
    a = bca_interval(x, n_resamples=2000, rng=5)
    b = bca_interval(x, n_resamples=2000, rng=np.random.default_rng(5))
    assert a == b and a.low < x.mean() < a.high and a.method == "bca-bootstrap"


@pytest.mark.parametrize(
    "call",
    [
        lambda: wilson_interval(0, 0),
        lambda: wilson_interval(5, 3),
        lambda: wilson_interval(1, 10, confidence=1.0),
        lambda: clopper_pearson_interval(0, 0),
        lambda: t_interval([1.0]),
        lambda: t_interval([0.5, 0.5, 0.5]),
        lambda: t_interval([0.1, float("nan")]),
        lambda: bca_interval([1.0, 1.0, 1.0, 1.0]),
        lambda: clustered_mean_interval([1, 0, 1], ["a", "a", "a"]),
        lambda: clustered_mean_interval([1, 1, 0, 0], ["a", "a", "b", "b"][:3]),
        lambda: clustered_mean_interval([1, 1, 1, 1], ["a", "a", "b", "b"]),
    ],
    ids=["n0", "k>n", "conf1", "cp-n0", "t-n1", "t-constant", "t-nan", "bca-constant", "one-cluster",
         "shape", "zero-se"],
)
def test_undecidable_inputs_raise_statistics_error(call):
    with pytest.raises(StatisticsError):
        call()


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 2), (1, 2), (2, 2)])
def test_tiny_n_gives_wide_finite_intervals(k, n):
    iv = wilson_interval(k, n)
    assert np.isfinite([iv.low, iv.high]).all() and iv.high - iv.low > 0.3

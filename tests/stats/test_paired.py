"""Paired comparisons: McNemar exact/mid-p, Newcombe CI, Cohen's h, paired t/Wilcoxon/bootstrap, Holm."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from cleanroom.errors import StatisticsError
from cleanroom.stats import (
    cohens_h,
    compare_paired_binary,
    compare_paired_graded,
    holm,
    midp_mcnemar,
    paired_bootstrap,
    paired_graded_pvalues,
)


def _table(both, only_a, only_b, neither):
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return a, b


def test_cavo_example_matches_published_values():
    """Fagerland, Lydersen & Laake (2017) ch. 8, Cavo et al. 2012: table (59, 6 | 16, 80).
    Δ = (16 − 6)/161 = 0.0621; Newcombe CI (0.0046, 0.1186); exact McNemar 2·P(X ≤ 6 | 22, ½) = 0.0525;
    mid-p = 0.0525 − P(X = 6) = 0.0347. Our sign is B − A, the book's A − B."""
    r = compare_paired_binary(*_table(59, 6, 16, 80))
    assert r.difference == pytest.approx(10 / 161, abs=1e-12)
    assert (round(r.ci_low, 4), round(r.ci_high, 4)) == (0.0046, 0.1186)
    assert round(r.p_exact, 4) == 0.0525 and round(r.p_midp, 4) == 0.0347
    assert (r.only_a, r.only_b, r.n) == (6, 16, 161)
    assert r.cohens_h == pytest.approx(2 * np.arcsin(np.sqrt(75 / 161)) - 2 * np.arcsin(np.sqrt(65 / 161)))


@settings(max_examples=200, deadline=None)
@given(b=st.integers(0, 300), c=st.integers(0, 300), both=st.integers(0, 50), neither=st.integers(0, 50))
def test_mcnemar_agrees_with_scipy_binomtest(b, c, both, neither):
    if b + c + both + neither == 0:
        return
    r = compare_paired_binary(*_table(both, b, c, neither))
    if b + c == 0:
        assert r.p_exact == 1.0 and r.p_midp == 1.0
    else:
        ref = sps.binomtest(min(b, c), b + c, 0.5).pvalue
        assert abs(r.p_exact - ref) <= 1e-9
        k = min(b, c)
        mid = min(1.0, 2 * sps.binom.cdf(k, b + c, 0.5) - sps.binom.pmf(k, b + c, 0.5))
        assert abs(r.p_midp - mid) <= 1e-9 and r.p_midp <= r.p_exact
    assert -1 <= r.ci_low < r.difference + 1e-12 and r.difference - 1e-12 < r.ci_high <= 1
    assert r.ci_high > r.ci_low


@pytest.mark.parametrize(
    "table",
    [(0, 0, 0, 1), (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 1), (200, 0, 0, 0), (0, 0, 0, 200), (90, 0, 0, 110)],
    ids=["n1-fail", "n1-pass", "n1-discordant", "n2", "all-pass", "all-fail", "no-discordant"],
)
def test_edge_tables_have_defined_results(table):
    r = compare_paired_binary(*_table(*table))
    values = [r.difference, r.ci_low, r.ci_high, r.p_exact, r.p_midp, r.cohens_h]
    assert np.isfinite(values).all()
    assert r.ci_high - r.ci_low > 0.01
    if table[1] + table[2] == 0:
        assert r.difference == 0.0 and r.p_midp == 1.0 and r.ci_low < 0 < r.ci_high


def test_bad_binary_inputs_raise():
    with pytest.raises(StatisticsError, match="n=0"):
        compare_paired_binary([], [])
    with pytest.raises(StatisticsError, match="same length"):
        compare_paired_binary([1, 0], [1])
    with pytest.raises(StatisticsError, match="pass/fail"):
        compare_paired_binary([0.5, 1], [1, 1])


def test_midp_is_vectorised_and_one_when_balanced():
    p = midp_mcnemar(np.array([0, 3, 5, 0]), np.array([0, 3, 0, 5]))
    assert p.shape == (4,) and p[0] == 1.0 and p[1] == pytest.approx(1.0)
    assert p[2] == pytest.approx(1 / 32) and p[3] == p[2]  # 2·(0 + ½·2⁻⁵)


def test_cohens_h_by_hand():
    """h(0.5 → 0.6) = 2·asin(√0.6) − 2·asin(√0.5) = 1.772154 − 1.570796 = 0.201358."""
    assert cohens_h(0.5, 0.6) == pytest.approx(0.2013579, abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(8, 60))
def test_graded_matches_scipy(seed, n):
    rng = np.random.default_rng(seed)
    a = rng.uniform(size=n)
    b = np.clip(a + rng.normal(0.05, 0.2, size=n), 0, 1)
    r = compare_paired_graded(a, b, n_resamples=200, rng=seed, override_reason="agreement with scipy at small n")
    d = b - a
    assert abs(r.p_t - sps.ttest_rel(b, a).pvalue) <= 1e-9
    assert abs(r.p_wilcoxon - sps.wilcoxon(b, a).pvalue) <= 1e-9
    ci = sps.ttest_rel(b, a).confidence_interval(0.95)
    assert abs(r.t_low - ci.low) <= 1e-9 and abs(r.t_high - ci.high) <= 1e-9
    assert abs(r.d_z - d.mean() / d.std(ddof=1)) <= 1e-9
    assert r.override_reason == "agreement with scipy at small n" and r.mde > 0


def _alternating(n, mean, spread):
    """A = 0.5 everywhere, B − A alternating mean ± spread (n even)."""
    d = mean + spread * np.tile([1.0, -1.0], n // 2)
    return np.full(n, 0.5), 0.5 + d


def test_graded_mde_and_verdict_by_hand():
    """n = 200, B − A alternating 0.1 ± 0.2: d̄ = 0.1, s_d = 0.2·√(200/199) = 0.200502.
    MDE at 80% power, α = 0.05 ≈ (t_.975,199 + t_.80,199)·s_d/√n = (1.971957 + 0.843431)·0.200502/14.142136
    = 0.039916 (statsmodels' noncentral-t solution d_z* = 0.199065 gives 0.039913).
    t = 0.1/(0.200502/√200) = 7.05, p ≈ 1e-11 → improved; B and A swapped → regressed (same MDE);
    mean 0 ± 0.2 → p = 1 → "no detectable difference (MDE = 0.040)"."""
    a, b = _alternating(200, 0.1, 0.2)
    r = compare_paired_graded(a, b, n_resamples=200)
    assert r.mde == pytest.approx(0.039916, abs=5e-6) and r.p_t < 1e-9
    assert r.verdict == "improved" and r.override_reason is None
    back = compare_paired_graded(b, a, n_resamples=200)
    assert back.verdict == "regressed" and back.mde == r.mde
    a0, b0 = _alternating(200, 0.0, 0.2)
    null = compare_paired_graded(a0, b0, n_resamples=200)
    assert null.p_t == pytest.approx(1.0) and null.verdict == "no detectable difference (MDE = 0.040)"


def test_graded_verdict_needs_n_200_or_a_reason():
    """Like the pass/fail comparisons: below 200 pairs (or with min_n < 200) a verdict needs a reason."""
    a, b = _alternating(40, 0.1, 0.2)
    with pytest.raises(StatisticsError, match="n=40 paired keys is below the minimum of 200"):
        compare_paired_graded(a, b, n_resamples=200)
    with pytest.raises(StatisticsError, match="below the floor of 200"):
        compare_paired_graded(a, b, n_resamples=200, min_n=20)
    r = compare_paired_graded(a, b, n_resamples=200, min_n=20, override_reason="pilot")
    assert r.override_reason == "pilot" and r.verdict == "improved"


def test_graded_pvalues_vectorised_match_row_by_row_scipy():
    """The simulations call paired_graded_pvalues on (reps, n): each row equals scipy on that row alone."""
    rng = np.random.default_rng(3)
    a = rng.uniform(size=(5, 40))
    b = a + rng.normal(0.05, 0.2, size=a.shape)
    p_t, p_w = paired_graded_pvalues(a, b)
    for i in range(5):
        assert abs(p_t[i] - sps.ttest_rel(b[i], a[i]).pvalue) <= 1e-12
        assert abs(p_w[i] - sps.wilcoxon(b[i], a[i]).pvalue) <= 1e-12
    b[3] = a[3] + 0.1
    with pytest.raises(StatisticsError, match="row 3 .*all 40 differences equal"):
        paired_graded_pvalues(a, b)
    with pytest.raises(StatisticsError, match="finite"):
        paired_graded_pvalues([0.1, np.nan, 0.3], [0.2, 0.1, 0.5])
    with pytest.raises(StatisticsError, match="one shape"):
        paired_graded_pvalues(a, b[:, :3])


def test_graded_refuses_zero_spread_and_tiny_n():
    with pytest.raises(StatisticsError, match="zero width"):
        compare_paired_graded([0.1, 0.2, 0.3], [0.2, 0.3, 0.4])
    with pytest.raises(StatisticsError, match="at least 3"):
        compare_paired_graded([0.1, 0.2], [0.2, 0.1])


@pytest.mark.parametrize("d", [[0.25] * 50, [0.0] * 3, [0.1] * 50, [0.3] * 1000], ids=["0.25", "zeros", "0.1x50", "0.3x1000"])
def test_paired_bootstrap_refuses_constant_differences(d):
    """Every resample of a constant has the same mean, so the interval would have zero width; and the
    sums round differently: for 0.1 × 50 the estimate np.mean = 0.09999999999999998 while every
    resample mean is (50·0.1)/50 = 0.1, so the estimate fell outside its own [0.1, 0.1] interval."""
    with pytest.raises(StatisticsError, match="zero width"):
        paired_bootstrap(d, n_resamples=200)


@settings(max_examples=60, deadline=None)
@given(d=st.lists(st.floats(-1, 1, allow_nan=False).map(lambda v: round(v, 3)), min_size=2, max_size=60))
def test_paired_bootstrap_interval_has_width_and_holds_its_estimate(d):
    arr = np.asarray(d)
    if np.ptp(arr) == 0:
        with pytest.raises(StatisticsError):
            paired_bootstrap(arr, n_resamples=200)
        return
    r = paired_bootstrap(arr, n_resamples=200, rng=1)
    assert r.high > r.low and r.low <= r.estimate + 1e-12 and r.estimate - 1e-12 <= r.high


def test_paired_bootstrap_reproducible_and_recorded():
    d = np.random.default_rng(0).normal(0.1, 1, size=500)
    r1 = paired_bootstrap(d, n_resamples=1000, rng=42)
    r2 = paired_bootstrap(d, n_resamples=1000, rng=42)
    r3 = paired_bootstrap(d, n_resamples=1000, rng=43)
    assert r1 == r2 and r1.seed == 42 and (r1.low, r1.high) != (r3.low, r3.high)
    # the recorded state reproduces a Generator-driven run
    gen = np.random.default_rng(7)
    gen.normal(size=3)
    r4 = paired_bootstrap(d, n_resamples=1000, rng=gen)
    replay = np.random.default_rng()
    replay.bit_generator.state = r4.rng_state
    assert paired_bootstrap(d, n_resamples=1000, rng=replay)[:4] == r4[:4] and r4.seed is None
    # percentile interval ≈ t interval for a large normal sample (half-widths within 10%)
    half_t = sps.t.ppf(0.975, 499) * d.std(ddof=1) / np.sqrt(500)
    assert (r1.high - r1.low) / 2 == pytest.approx(half_t, rel=0.1)


@pytest.mark.parametrize(
    "x",
    [np.random.default_rng(4).normal(size=400), (np.random.default_rng(4).random(400) < 0.3) * 1.0 - 0.5],
    ids=["index-path", "count-path"],
)
def test_bootstrap_mean_distribution_matches_theory(x):
    """Resampling n values with replacement: E[mean*] = x̄, Var[mean*] = σ̂²/n (σ̂² with ddof 0).
    Continuous scores take the index path; two distinct values take the multinomial-count path."""
    from cleanroom.stats.paired import bootstrap_means

    m = bootstrap_means(x, 20_000, np.random.default_rng(0))
    assert m.mean() == pytest.approx(x.mean(), abs=3 * x.std() / 20 / np.sqrt(20_000) * 1.5)
    assert m.var() == pytest.approx(x.var() / x.size, rel=0.05)


def test_paired_bootstrap_index_resampling_is_uniform():
    """Each bootstrap mean of a one-hot vector e_j counts how often index j was drawn: mean 1/n.
    (n = 20 < 16·2 distinct values, so this exercises the index path.)"""
    n = 20
    gen = np.random.default_rng(1)
    from cleanroom.stats.paired import bootstrap_means

    hits = np.stack([bootstrap_means(np.eye(n)[j], 2000, gen) for j in range(n)]) * n
    assert abs(hits.mean() - 1.0) < 0.01 and np.abs(hits.mean(axis=1) - 1).max() < 0.1


def test_holm_by_hand():
    """p = (0.01, 0.04, 0.03): sorted 0.01·3 = 0.03, 0.03·2 = 0.06, max(0.06, 0.04·1) = 0.06."""
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    with pytest.raises(StatisticsError):
        holm([])
    with pytest.raises(StatisticsError):
        holm([1.2])


def test_paired_bootstrap_agrees_with_scipy_bootstrap():
    """Same data, percentile method: our CI and scipy.stats.bootstrap(paired=True) agree to within
    Monte-Carlo error (2% of the interval width at 5,000 resamples)."""
    rng = np.random.default_rng(12)
    a = rng.beta(2, 3, size=800)
    b = np.clip(a + rng.normal(0.03, 0.2, size=800), 0, 1)
    ours = paired_bootstrap(b - a, n_resamples=5000, rng=0)
    ref = sps.bootstrap((a, b), lambda x, y, axis=-1: np.mean(y - x, axis=axis), paired=True,
                        n_resamples=5000, method="percentile", rng=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    assert abs(ours.low - ref.low) < 0.02 * width and abs(ours.high - ref.high) < 0.02 * width

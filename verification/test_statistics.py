"""Statistical validity by simulation: coverage, type-I error, power, reproducibility across processes.

Each calibration test also shows the naive method failing on the same data, so the check can fail.
Simulations are vectorised and seeded; the whole module runs in a few seconds on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from cleanroom.stats import (
    clustered_mean_interval,
    midp_mcnemar,
    power_paired_binary,
    wilson_interval,
)
from cleanroom.stats.compare import _instruction_level
from cleanroom.stats.intervals import wilson_bounds
from cleanroom.stats.paired import bootstrap_means

REPS = 4000
Z = sps.norm.ppf(0.975)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.8, 0.95])
def test_wilson_coverage_at_n200(p):
    """All 4,000 binomials drawn at once (MC SE ≈ 0.0034). Wilson never under-covers by more than
    0.015 and stays within 0.95 ± 0.015 for p in {0.2, 0.5, 0.8}. At p = 0.05 and 0.95 its *exact*
    coverage at n = 200 is Σ_k Binom(k; 200, p)·1[p ∈ CI(k)] = 0.9672 (the known oscillation of
    Wilson's coverage, Brown, Cai & DasGupta 2001, Fig. 5): conservative by 0.017, so there the
    simulation is checked against that exact value instead of the ±0.015 band."""
    rng = np.random.default_rng(int(p * 1000))
    k = rng.binomial(200, p, size=REPS)
    low, high = wilson_bounds(k, np.full(REPS, 200), Z)
    cover = np.mean((low <= p) & (p <= high))
    grid = np.arange(201)
    gl, gh = wilson_bounds(grid, np.full(201, 200), Z)
    exact = float(sps.binom.pmf(grid, 200, p)[(gl <= p) & (p <= gh)].sum())
    assert cover >= 0.935, cover
    assert abs(cover - exact) <= 0.012, (cover, exact)
    if p in (0.05, 0.95):
        assert exact == pytest.approx(0.9672, abs=1e-4)
    else:
        assert abs(cover - 0.95) <= 0.015, cover
    # the scalar API is the same formula
    i = int(np.argmax(k))
    assert (wilson_interval(int(k[i]), 200).low, wilson_interval(int(k[i]), 200).high) == (low[i], high[i])


def test_wald_under_covers_where_wilson_does_not():
    """At p = 0.05, n = 200 the Wald interval p̂ ± z√(p̂(1−p̂)/n) covers ≈ 0.925 on the same draws."""
    rng = np.random.default_rng(50)
    k = rng.binomial(200, 0.05, size=REPS)
    ph = k / 200
    half = Z * np.sqrt(ph * (1 - ph) / 200)
    wald = np.mean((ph - half <= 0.05) & (0.05 <= ph + half))
    low, high = wilson_bounds(k, np.full(REPS, 200), Z)
    assert wald < 0.935 <= np.mean((low <= 0.05) & (0.05 <= high))


def _clustered_draws(rng, n_clusters, sizes, mu, icc, reps):
    """Beta-binomial clusters: p_c ~ Beta(μ(1/ρ−1), (1−μ)(1/ρ−1)) gives intra-cluster correlation ρ."""
    s = 1 / icc - 1
    pc = rng.beta(mu * s, (1 - mu) * s, size=(reps, n_clusters))
    return rng.random((reps, sizes.sum())) < np.repeat(pc, sizes, axis=1)


def test_clustered_interval_covers_with_icc_02_and_naive_does_not():
    """ICC 0.2, 150 prompts × 2–7 instructions (mean m ≈ 4.5, design effect ≈ 1.7): the clustered
    t interval covers 0.95 ± 0.02; the naive Wilson interval on all instructions under-covers."""
    rng = np.random.default_rng(20)
    sizes = rng.integers(2, 8, size=150)
    groups = np.repeat(np.arange(150), sizes)
    mu = 0.6
    y = _clustered_draws(rng, 150, sizes, mu, 0.2, REPS)
    cover = naive = 0
    for row in y:
        iv = clustered_mean_interval(row.astype(float), groups)
        cover += iv.low <= mu <= iv.high
        w = wilson_interval(int(row.sum()), row.size)
        naive += w.low <= mu <= w.high
    assert abs(cover / REPS - 0.95) <= 0.02, cover / REPS
    assert naive / REPS < 0.92, naive / REPS


def test_midp_mcnemar_type_one_error():
    """H0 (p10 = p01 = 0.1) at n = 200: rejection rate ≤ α + 0.01; the exact test is conservative."""
    rng = np.random.default_rng(5)
    counts = rng.multinomial(200, [0.1, 0.1, 0.8], size=REPS)
    p = midp_mcnemar(counts[:, 0], counts[:, 1])
    exact = np.minimum(1, 2 * sps.binom.cdf(np.minimum(counts[:, 0], counts[:, 1]), counts[:, :2].sum(1), 0.5))
    assert np.mean(p < 0.05) <= 0.06
    assert np.mean(exact < 0.05) <= np.mean(p < 0.05)


def test_unpaired_z_test_loses_power_that_pairing_keeps():
    """The lm-eval style unpaired two-proportion z test on paired data, true gap 0.05 at n = 200
    (p_A = 0.5, ψ = 0.15): paired mid-p McNemar has several times its power."""
    rng = np.random.default_rng(6)
    p10, p01 = 0.05, 0.10
    c = rng.multinomial(200, [p10, p01, 0.425, 0.425], size=REPS)  # only_a, only_b, both, neither
    pa, pb = (c[:, 0] + c[:, 2]) / 200, (c[:, 1] + c[:, 2]) / 200
    pool = (pa + pb) / 2
    z = (pb - pa) / np.sqrt(2 * pool * (1 - pool) / 200)
    unpaired = np.mean(2 * sps.norm.sf(np.abs(z)) < 0.05)
    paired = np.mean(midp_mcnemar(c[:, 0], c[:, 1]) < 0.05)
    assert paired > 2 * unpaired and paired > 0.35


@pytest.mark.parametrize("n,psi,delta", [(200, 0.2, 0.08), (300, 0.15, 0.06), (500, 0.1, 0.04)])
def test_midp_power_matches_formula(n, psi, delta):
    rng = np.random.default_rng(n)
    c = rng.multinomial(n, [(psi - delta) / 2, (psi + delta) / 2, 1 - psi], size=REPS)
    sim = np.mean(midp_mcnemar(c[:, 0], c[:, 1]) < 0.05)
    assert abs(sim - power_paired_binary(n, delta, psi)) <= 0.03


def test_paired_t_and_wilcoxon_type_one_and_power():
    """Skewed graded scores (shared Beta(2,5) item effect + noise): type-I ≤ α + 0.01 for both tests;
    power of the t test at d_z = 0.2, n = 200 within 0.03 of statsmodels TTestPower."""
    from statsmodels.stats.power import TTestPower

    rng = np.random.default_rng(7)
    item = rng.beta(2, 5, size=(REPS, 200))
    a = item + rng.normal(0, 0.1, size=item.shape)
    b = item + rng.normal(0, 0.1, size=item.shape)
    assert np.mean(sps.ttest_rel(b, a, axis=1).pvalue < 0.05) <= 0.06
    assert np.mean(sps.wilcoxon(b, a, axis=1, method="approx").pvalue < 0.05) <= 0.06
    sd = 0.1 * np.sqrt(2)
    b_shift = b + 0.2 * sd
    sim = np.mean(sps.ttest_rel(b_shift, a, axis=1).pvalue < 0.05)
    assert abs(sim - TTestPower().power(effect_size=0.2, nobs=200, alpha=0.05)) <= 0.03


def test_instruction_level_compare_holds_alpha_and_naive_mcnemar_does_not():
    """Two systems with the same per-prompt pass rate but correlated instructions (a prompt is easy or
    hard for both): the clustered Wald-t p-value keeps type-I ≤ α + 0.01; McNemar on instruction pairs,
    which ignores the clustering, rejects far more often."""
    rng = np.random.default_rng(8)
    n_keys = 200
    sizes = rng.integers(2, 8, size=n_keys)
    groups = np.repeat(np.arange(n_keys), sizes)
    reps = 2000
    # per prompt: a flip rate f_c and a direction bias q_c ~ Beta(0.3, 0.3) (symmetric: H0 holds
    # overall, but within a prompt the flips tend to go the same way)
    shape = (reps, sizes.sum())
    f = np.repeat(rng.beta(2.0, 5.0, size=(reps, n_keys)), sizes, axis=1)
    q = np.repeat(rng.beta(0.3, 0.3, size=(reps, n_keys)), sizes, axis=1)
    base = rng.random(shape) < 0.5
    flipped = rng.random(shape) < f
    a_wins = rng.random(shape) < q
    a = np.where(flipped, a_wins, base)
    b = np.where(flipped, ~a_wins, base)
    rej = naive = 0
    for x, y in zip(a, b, strict=True):
        rej += _instruction_level(x, y, groups, 0.95, 0.05)["p_value"] < 0.05
        naive += midp_mcnemar(int(np.sum(x & ~y)), int(np.sum(~x & y))) < 0.05
    assert rej / reps <= 0.06, rej / reps
    assert naive / reps > 0.07, naive / reps


def test_bootstrap_percentile_coverage():
    """Percentile bootstrap of a mean (n = 100, skewed exponential scores): 1,000 replications ×
    1,000 resamples cover 0.95 within ±0.025 (n = 100 percentile intervals run slightly narrow)."""
    rng = np.random.default_rng(9)
    cover = 0
    for _ in range(1000):
        x = rng.exponential(size=100) - 1.0
        m = bootstrap_means(x, 1000, rng)
        low, high = np.quantile(m, [0.025, 0.975])
        cover += low <= 0.0 <= high
    assert abs(cover / 1000 - 0.95) <= 0.025, cover / 1000


_CHILD = """
import json, sys
import numpy as np
from cleanroom.stats import paired_bootstrap, bca_interval, compare_verdict_files
d = np.random.default_rng(1).normal(0.05, 1, size=3000)
b = paired_bootstrap(d, n_resamples=2000, rng=11)
c = bca_interval(d[:300], n_resamples=1000, rng=11)
rows = [r.to_json() for r in compare_verdict_files(sys.argv[1:], override_reason="reproducibility check")]
print(json.dumps({"boot": [b.low, b.high], "bca": [c.low, c.high], "rows": rows}))
"""


def test_same_seed_same_numbers_across_processes(tmp_path):
    rng = np.random.default_rng(3)
    files = []
    for name in ("a", "b"):
        p = tmp_path / f"{name}.jsonl"
        lines = []
        for k in range(60):
            lst = [bool(v) for v in rng.random(3) < (0.4 if name == "a" else 0.6)]
            lines.append(json.dumps({"key": f"k{k}", "strict": {"follow_all_instructions": all(lst),
                                                                 "follow_instruction_list": lst}}))
        p.write_text("\n".join(lines) + "\n")
        files.append(str(p))
    outs = []
    for hashseed in ("1", "987654"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        res = subprocess.run([sys.executable, "-c", _CHILD, *files], env=env, capture_output=True, text=True, check=True)
        outs.append(json.loads(res.stdout))
    assert outs[0] == outs[1]
    assert outs[0]["boot"][0] < 0.05 < outs[0]["boot"][1]

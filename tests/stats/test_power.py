"""Power, MDE and required n (Connor's McNemar formula, TTestPower), verdict words and the min-n rule."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.errors import StatisticsError
from cleanroom.stats import (
    mde_from_se,
    mde_paired_binary,
    mde_paired_mean,
    power_paired_binary,
    require_min_n,
    required_n_paired_binary,
    required_n_paired_mean,
    verdict_for,
)


def test_required_n_by_hand():
    """δ = 0.05, ψ = 0.15: (1.95996·√0.15 + 0.84162·√0.1475)²/0.0025 = (0.75909 + 0.32323)²/0.0025
    = 468.57 → 469 pairs."""
    assert required_n_paired_binary(0.05, 0.15) == 469
    assert power_paired_binary(469, 0.05, 0.15) >= 0.80 > power_paired_binary(468, 0.05, 0.15)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(20, 20_000), psi=st.floats(0.0, 0.9))
def test_mde_inverts_the_power_formula(n, psi):
    mde = mde_paired_binary(n, psi)
    assert 0 < mde <= 1 and math.isfinite(mde)
    if mde < 1:
        assert power_paired_binary(n, mde, max(psi, mde)) == pytest.approx(0.80, abs=1e-6)


def test_mde_without_discordance_is_positive_and_shrinks_with_n():
    """ψ = 0: planning ψ = δ, power = Φ((√(nδ) − z)/√(1−δ)) = 0.8 → δ ≈ (z_a + z_b)²/n for large n."""
    m200, m2000 = mde_paired_binary(200, 0.0), mde_paired_binary(2000, 0.0)
    assert 0 < m2000 < m200 < 0.1
    assert m2000 == pytest.approx((1.959964 + 0.841621) ** 2 / 2000, rel=0.02)


def test_paired_mean_power_via_statsmodels():
    from statsmodels.stats.power import TTestPower

    dz = mde_paired_mean(200, 1.0)
    assert TTestPower().power(effect_size=dz, nobs=200, alpha=0.05) == pytest.approx(0.80, abs=1e-4)
    n = required_n_paired_mean(0.2)
    assert TTestPower().power(effect_size=0.2, nobs=n, alpha=0.05) >= 0.8
    assert TTestPower().power(effect_size=0.2, nobs=n - 1, alpha=0.05) < 0.8


def test_mde_from_se_by_hand():
    """df = 10, se = 0.02: (t_.975 + t_.80)·se = (2.228139 + 0.879058)·0.02 = 0.062144."""
    assert mde_from_se(0.02, 10) == pytest.approx(0.0621439, abs=1e-6)


@pytest.mark.parametrize(
    "call",
    [
        lambda: required_n_paired_binary(0.2, 0.1),
        lambda: required_n_paired_binary(0.0, 0.1),
        lambda: power_paired_binary(100, 0.3, 0.2),
        lambda: mde_paired_binary(0, 0.1),
        lambda: mde_paired_binary(100, 1.5),
        lambda: mde_paired_binary(100, 0.1, alpha=0.0),
        lambda: mde_paired_mean(2, 1.0),
        lambda: required_n_paired_mean(0.0),
        lambda: mde_from_se(0.0, 10),
    ],
)
def test_impossible_power_questions_raise(call):
    with pytest.raises(StatisticsError):
        call()


def test_verdict_words():
    assert verdict_for(0.05, 0.01, 0.04) == "improved"
    assert verdict_for(-0.05, 0.01, 0.04) == "regressed"
    assert verdict_for(0.05, 0.2, 0.0712) == "no detectable difference (MDE = 0.071)"
    assert verdict_for(0.0, 0.0, 0.03).startswith("no detectable difference")
    with pytest.raises(StatisticsError):
        verdict_for(0.1, 1.5, 0.1)


def test_min_n_rule():
    assert require_min_n(200) is None
    with pytest.raises(StatisticsError, match="below the minimum of 200"):
        require_min_n(199)
    with pytest.raises(StatisticsError):
        require_min_n(10, override_reason="   ")
    assert require_min_n(10, override_reason=" smoke test on the tiny profile ") == "smoke test on the tiny profile"

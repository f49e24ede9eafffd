"""Cost projection: hours = tokens / rate / 3600, dollars = hours * price; hand-derived figures and bad input."""

from __future__ import annotations

import pytest

from cleanroom.cost import DPO_THROUGHPUT_FACTOR, Phase, project_cost, stage1_phases
from cleanroom.errors import ConfigError


def test_one_hour_at_default_price():
    # 3.6e6 tokens at 1000 tokens/s = 3600 s = 1 h; plus 1800 s overhead = 1.5 h; x $1.74 = $2.61
    p = project_cost([Phase("sft", 3.6e6, 1000.0)], overhead_s=1800)
    assert p.hours == pytest.approx(1.5) and p.dollars == pytest.approx(2.61)
    assert p.phase_hours == {"sft": pytest.approx(1.0), "overhead": pytest.approx(0.5)}
    assert p.within(max_cost_usd=3.0) and not p.within(max_cost_usd=2.0) and not p.within(max_hours=1.0)


def test_stage1_phases_token_counts():
    ph = {p.name: p for p in stage1_phases(train_tokens_per_s=2000, gen_tokens_per_s=500, n_sft_examples=100,
                                           sft_tokens_per_example=500, sft_epochs=2, n_pairs=10,
                                           pair_tokens_per_side=300, dpo_epochs=1)}
    assert ph["sft"].tokens == 100 * 500 * 2 and ph["sft"].tokens_per_s == 2000
    assert ph["dpo"].tokens == 10 * 2 * 300 and ph["dpo"].tokens_per_s == 2000 * DPO_THROUGHPUT_FACTOR
    assert ph["eval"].tokens == 2 * 300 * 512  # SFT and DPO models; the base is the baseline phase
    total = project_cost(list(ph.values()), price_per_hour=2.0)
    assert total.dollars == pytest.approx(2.0 * sum(p.tokens / p.tokens_per_s for p in ph.values()) / 3600)


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), float("inf")])
def test_unmeasured_or_bad_rates_are_refused(rate):
    with pytest.raises(ConfigError, match="tokens_per_s"):
        project_cost([Phase("sft", 10, rate)])

"""Cost projection: hours = tokens / rate / 3600, dollars = hours * price; hand-derived figures and bad input."""

from __future__ import annotations

import json

import pytest

from cleanroom.cost import DPO_THROUGHPUT_FACTOR, Phase, project_cost, read_gate_rates, stage1_phases
from cleanroom.errors import ConfigError, InputError


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


def test_sft_data_is_priced_at_its_own_new_tokens():
    # 2000 pool prompts x 1 sample x 768 new tokens = 1,536,000 tokens, not 2000 x 512 (the eval's length)
    ph = {p.name: p for p in stage1_phases(train_tokens_per_s=1, gen_tokens_per_s=1, n_pool_prompts=2000,
                                           sft_new_tokens=768, eval_new_tokens=512)}
    assert ph["sft_data"].tokens == 1_536_000
    assert ph["baseline_eval"].tokens == 300 * 512


def _gate_report(path, checks):
    path.write_text(json.dumps({"verdict": "GO", "context": {"device": "NVIDIA H200"},
                                "checks": [{"check": c, "figures": f} for c, f in checks.items()]}))
    return path


def test_gate_rates_are_read_and_scaled_to_the_target_size(tmp_path):
    # check 9 measured on a 1.6B model: 3000 train and 1200 generation tokens/s; at 32B (20x the
    # parameters) the projection takes 3000 / 20 = 150 and 1200 / 20 = 60 tokens/s
    report = _gate_report(tmp_path / "gate-report.json", {"9_cost": {
        "measured_train_tokens_per_s": 3000.0, "measured_gen_tokens_per_s": 1200.0,
        "scaling": "x 1.600B / 32.764B (tokens/s taken as inversely proportional to params)"}})
    rates = read_gate_rates(report)
    assert (rates.params_b, rates.device, rates.verdict) == (1.6, "NVIDIA H200", "GO")
    assert rates.scaled_to(32.0) == {"train_tokens_per_s": pytest.approx(150.0), "gen_tokens_per_s": pytest.approx(60.0)}


_SFT = {"unsloth_steady_tokens_per_s": 7520.0, "peft_steady_tokens_per_s": 4700.0}  # 7520 / 4700 = 1.6
_DPO = {"unsloth_dpo_steady_tokens_per_s": 3240.0, "peft_dpo_steady_tokens_per_s": 2000.0}  # 3240 / 2000 = 1.62


@pytest.mark.parametrize(("check10", "sft", "dpo"), [
    ({"status": "passed", "figures": {**_SFT, **_DPO}}, 1.6, 1.62),
    ({"status": "passed", "figures": _SFT}, 1.6, None),  # a gate from before check 10 measured DPO
    ({"status": "passed", "figures": _DPO}, None, 1.62),
    ({"status": "failed", "figures": {**_SFT, **_DPO}}, None, None),  # not at parity: no rate to price with
    ({"status": "skipped", "figures": {}}, None, None),
    ({"status": "passed", "figures": {**_SFT, "unsloth_dpo_steady_tokens_per_s": 3240.0,
                                      "peft_dpo_steady_tokens_per_s": 0}}, 1.6, None),
    ({"status": "passed", "figures": {**_SFT, "unsloth_dpo_steady_tokens_per_s": True,
                                      "peft_dpo_steady_tokens_per_s": 2000.0}}, 1.6, None),
    ({"status": "passed", "figures": {**_SFT, "unsloth_dpo_steady_tokens_per_s": "3240",
                                      "peft_dpo_steady_tokens_per_s": 2000.0}}, 1.6, None),
    (None, None, None),
])
def test_gate_rates_carry_check_10s_unsloth_ratio_per_training_stage(tmp_path, check10, sft, dpo):
    """Check 10's steady Unsloth tokens/s over peft's, for SFT and for DPO apart, only from a passed check with both
    figures positive numbers; anything else is None (never 1.0: an unmeasured ratio must not look measured)."""
    checks = [{"check": "9_cost", "figures": {"measured_train_tokens_per_s": 3000.0, "measured_gen_tokens_per_s": 1200.0,
                                              "scaling": "x 1.600B / 32.764B"}}]
    if check10 is not None:
        checks.append({"check": "10_unsloth", **check10})
    report = tmp_path / "gate-report.json"
    report.write_text(json.dumps({"verdict": "GO", "context": {"device": "NVIDIA H200"}, "checks": checks}))
    rates = read_gate_rates(report)
    assert rates.unsloth_speedup == (pytest.approx(sft) if sft is not None else None)
    assert rates.unsloth_dpo_speedup == (pytest.approx(dpo) if dpo is not None else None)


def test_an_incomplete_or_missing_gate_report_is_refused(tmp_path):
    report = _gate_report(tmp_path / "gate-report.json", {"9_cost": {"measured_train_tokens_per_s": 3000.0}})
    with pytest.raises(ConfigError, match="measured_gen_tokens_per_s.*scaling"):
        read_gate_rates(report)
    with pytest.raises(FileNotFoundError, match="run the GPU gate"):
        read_gate_rates(tmp_path / "absent.json")
    with pytest.raises(InputError, match="is a directory; name the gate-report.json inside it"):
        read_gate_rates(tmp_path)


@pytest.mark.parametrize(("body", "problem"), [
    ('{"verdict": "GO"}', 'it has no "checks" key'),
    ("[1]", "it holds list, not a JSON object"),
    ('{"checks": {"9_cost": {}}}', '"checks" is dict, not a list'),
    ('{"checks": [{"figures": {}}]}', '"checks"[0] has no "check" name'),
    ("{x", "is not valid JSON"),
])
def test_a_file_that_is_no_gate_report_is_one_input_error_naming_it(tmp_path, body, problem):
    """A bad --gate-report was "KeyError: 'checks'": the error names the file, what is wrong and the fix."""
    path = tmp_path / "bad.json"
    path.write_text(body)
    with pytest.raises(InputError) as info:
        read_gate_rates(path)
    message = str(info.value)
    assert message.startswith(f"budget.gate_report: {path} ") and problem in message and "KeyError" not in message
    assert message.endswith("at the gate-report.json that `pytest -m gpu` wrote") and "\n" not in message


def test_data_parallel_scales_rates_by_measured_efficiency():
    from cleanroom.cost import Phase, data_parallel

    phases = [Phase("sft", 7200.0, 2.0)]  # 3600 s on one GPU
    two = data_parallel(phases, n_gpus=2, efficiency=0.9)
    assert two[0].tokens_per_s == pytest.approx(3.6) and two[0].seconds == pytest.approx(2000.0)  # 7200 / (2 x 2 x 0.9)
    assert data_parallel(phases, n_gpus=1, efficiency=1.0) == phases
    for bad in ({"n_gpus": 0, "efficiency": 1.0}, {"n_gpus": 2, "efficiency": 1.5}, {"n_gpus": 2, "efficiency": 0.0}):
        with pytest.raises(ConfigError):
            data_parallel(phases, **bad)

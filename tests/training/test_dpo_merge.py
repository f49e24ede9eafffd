"""DPO step 0 = ln 2 with zero margin against the SFT policy; merged and adapter logits agree; nf4 QLoRA steps."""

from __future__ import annotations

import math

import pytest
import torch

from cleanroom.errors import ConfigError, GateError
from cleanroom.training import merge_and_verify, train_dpo, train_sft

pytestmark = pytest.mark.slow

PAIRS = [{"prompt": "Say yes:", "chosen": " yes", "rejected": " no, never"}] * 4
PROBES = ["Hello world", "The cat sat on the mat."]


def _sft_policy(load_tiny):
    """A non-trivial 'SFT' policy: the tiny base with a randomly initialised (B != 0) LoRA attached."""
    from peft import LoraConfig, get_peft_model

    model, tok = load_tiny()
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    return get_peft_model(model, cfg), tok


def test_merge_is_equivalent_then_dpo_starts_at_ln2_against_the_sft_policy(load_tiny, lora, spec, tmp_path):
    policy, tok = _sft_policy(load_tiny)
    base_logits = None
    with policy.disable_adapter(), torch.no_grad():
        ids = tok(PROBES[0], return_tensors="pt")["input_ids"]
        base_logits = policy(input_ids=ids).logits
    merged, diff = merge_and_verify(policy, tok, probe_texts=PROBES, atol=1e-4)
    with torch.no_grad():
        merged_logits = merged(input_ids=ids).logits
    assert diff <= 1e-4
    assert float((merged_logits - base_logits).abs().max()) > 1e-3  # the adapter really changed the model

    res = train_dpo(merged, tok, PAIRS, lora=lora, train=spec(max_steps=3, save_steps=3, learning_rate=2e-2),
                    beta=0.1, output_dir=tmp_path / "dpo")
    # policy == reference at step 0: every implicit reward is 0, so L = -log sigmoid(0) = ln 2 = 0.693147.
    assert res.step0_loss == pytest.approx(math.log(2), abs=1e-3)
    assert res.step0_margin == pytest.approx(0.0, abs=1e-6)
    assert res.losses[0] == pytest.approx(math.log(2), abs=1e-3)
    assert res.losses[-1] < math.log(2) - 1e-3  # it learns to prefer the chosen answer
    assert (res.adapter_dir / "adapter_model.safetensors").is_file()


def test_merge_refuses_a_model_without_adapter(load_tiny):
    model, tok = load_tiny()
    with pytest.raises(ConfigError, match="PEFT model"):
        merge_and_verify(model, tok, probe_texts=PROBES, atol=1e-3)


def test_qlora_nf4_step_on_cpu(load_tiny, learnable, lora, spec, tmp_path):
    model, tok = load_tiny(quantization="nf4")
    assert model.is_loaded_in_4bit
    res = train_sft(model, tok, learnable[:2], lora=lora, train=spec(max_steps=1, save_steps=1),
                    output_dir=tmp_path)
    assert res.steps == 1 and math.isfinite(res.losses[0])
    trainable = {n for n, p in res.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_resumed_dpo_reports_the_step0_check_measured_before_the_interruption(load_tiny, lora, spec, tmp_path):
    """Stopped after step 1 (a budget stop saves a checkpoint), then resumed: step 0 is reloaded, not lost."""
    from cleanroom.report import render_markdown

    train = spec(max_steps=3, save_steps=1, learning_rate=2e-2)
    model, tok = load_tiny()
    first = train_dpo(model, tok, PAIRS, lora=lora, train=train, beta=0.1, output_dir=tmp_path,
                      budget=lambda: "test budget")
    assert first.steps == 1 and first.stopped_reason
    model, tok = load_tiny()
    resumed = train_dpo(model, tok, PAIRS, lora=lora, train=train, beta=0.1, output_dir=tmp_path, resume=True)
    assert resumed.resumed_from and resumed.steps == 3
    assert (resumed.step0_loss, resumed.step0_margin) == (first.step0_loss, first.step0_margin)
    data = {"dpo": resumed.to_dict(), "run": {"run_id": "r", "config_sha256": "0" * 64}, "provenance": {},
            "config": {"model": {"path": "tiny"}, "budget": {"price_per_hour": 0.0}}}
    text = render_markdown(data, {"hours": 0.0, "cost_usd": 0.0})
    assert f"step-0 loss {first.step0_loss:.6f}" in text and "DPO step-0 check missing" not in text


def test_step0_tolerance_is_the_configured_one(load_tiny, lora, spec, tmp_path):
    model, tok = load_tiny()
    with pytest.raises(GateError, match="differ by more than 1e-12"):
        train_dpo(model, tok, PAIRS, lora=lora, train=spec(max_steps=1), beta=0.1, output_dir=tmp_path,
                  step0_atol=1e-12)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"beta": -1}, "dpo.beta = -1.0 is invalid; allowed: a number in (0, 10] (0.1 is common)"),
    ({"beta": 0.1, "step0_atol": 1}, "dpo.step0_atol = 1.0 is invalid; allowed: a number in (0, 1) (1e-3 is usual)"),
])
def test_train_dpo_words_its_arguments_rules_as_the_profile_does(lora, spec, tmp_path, kwargs, message):
    """train_dpo's beta and step0_atol are the dpo section's fields: a bad one fails before any model work, with
    the very line load_config prints for the same value."""
    from cleanroom.config import load_config

    with pytest.raises(ConfigError) as direct:
        train_dpo(None, None, PAIRS, lora=lora, train=spec(), output_dir=tmp_path, **kwargs)
    with pytest.raises(ConfigError) as loaded:
        load_config("tiny", [f"dpo.{k}={v}" for k, v in kwargs.items()])
    assert str(direct.value) == str(loaded.value) == message

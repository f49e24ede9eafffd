"""LoraSpec and TrainSpec reject bad values naming the field, and translate to PEFT/TRL arguments."""

from __future__ import annotations

import pytest

from cleanroom.errors import ConfigError
from cleanroom.training import ALL_PROJECTIONS, LoraSpec, TrainSpec


def test_lora_defaults_target_every_attention_and_mlp_projection():
    spec = LoraSpec()
    assert spec.targets == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert spec.targets == ALL_PROJECTIONS
    # r=64, alpha=16: scale 16/64 = 0.25; rsLoRA: 16/sqrt(64) = 2.0
    assert LoraSpec(r=64, alpha=16).scale == 0.25
    assert LoraSpec(r=64, alpha=16, use_rslora=True).scale == 2.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"r": 0}, "LoraSpec.r"),
        ({"r": 8.0}, "LoraSpec.r"),
        ({"alpha": -1}, "LoraSpec.alpha"),
        ({"dropout": 1.0}, "LoraSpec.dropout"),
        ({"targets": ()}, "LoraSpec.targets"),
        ({"targets": ("q_proj", "lm_head")}, "LoraSpec.targets"),
        ({"targets": ("q_proj", "q_proj")}, "LoraSpec.targets"),
    ],
)
def test_lora_rejects_bad_values(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        LoraSpec(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"max_steps": 0}, "max_steps"),
        ({"batch_size": True}, "batch_size"),
        ({"max_length": 4}, "max_length"),
        ({"lr_scheduler": "triangle"}, "lr_scheduler"),
        ({"precision": "fp16"}, "precision"),
        ({"optim": "sgd"}, "optim"),
        ({"report_to": "neptune"}, "report_to"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
        ({"trl_overrides": {"learning_rate": 1.0}}, "trl_overrides"),
        ({"padding_free": 1}, "padding_free"),
        ({"trl_overrides": {"padding_free": True}}, "trl_overrides"),  # TrainSpec owns it: one source of truth
        ({"kbit_fp32_upcast": "no"}, "kbit_fp32_upcast"),
        ({"trl_overrides": {"precompute_ref_log_probs": True}}, "trl_overrides"),
    ],
)
def test_train_spec_rejects_bad_values(kwargs, field):
    with pytest.raises(ConfigError, match=f"TrainSpec.{field}"):
        TrainSpec(**kwargs)


def test_specs_are_frozen():
    with pytest.raises(AttributeError):
        LoraSpec().r = 4  # type: ignore[misc]


def test_trainer_kwargs_checkpoint_and_early_stopping_wiring():
    kw = TrainSpec(save_steps=5, early_stopping_patience=2, precision="fp32").trainer_kwargs("out", has_eval=True)
    assert (kw["save_strategy"], kw["save_steps"], kw["eval_strategy"], kw["eval_steps"]) == ("steps", 5, "steps", 5)
    assert kw["load_best_model_at_end"] and kw["metric_for_best_model"] == "eval_loss"
    assert kw["bf16"] is False and kw["report_to"] == []
    with pytest.raises(ConfigError, match="early_stopping_patience"):
        TrainSpec(early_stopping_patience=2).trainer_kwargs("out", has_eval=False)


def test_levers_record_each_setting_with_its_reason():
    """Defaults: padded, no fp32 upcast, live reference, random micro-batches; each flip changes its own entry's
    setting and reason."""
    default = TrainSpec().levers()
    assert {k: v["on"] for k, v in default.items()} == {"padding_free": False, "kbit_fp32_upcast": False,
                                                         "pad_to_multiple_of": False, "precompute_ref_log_probs": False,
                                                         "group_by_length": False, "batch_rebalance": False}
    assert all(v["reason"].startswith("default:") and "value" not in v for v in default.values())
    fast = TrainSpec(padding_free=True, kbit_fp32_upcast=True, precompute_ref_log_probs=True,
                     batch_rebalance=True).levers()
    bucketed = TrainSpec(pad_to_multiple_of=128).levers()["pad_to_multiple_of"]
    assert bucketed["on"] is True and bucketed["value"] == 128 and bucketed["reason"].startswith("chosen:")
    fast["pad_to_multiple_of"] = bucketed  # padding_free and bucketing exclude each other
    fast["group_by_length"] = TrainSpec(group_by_length=True).levers()["group_by_length"]  # as batch_rebalance
    assert all(v["reason"].startswith("chosen:") for v in fast.values())
    assert {k: v["on"] for k, v in fast.items()} == {k: not v["on"] for k, v in default.items()}


def test_lora_to_peft_config():
    cfg = LoraSpec(r=4, alpha=8, dropout=0.1).to_peft()
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.bias) == (4, 8, 0.1, "none")
    assert set(cfg.target_modules) == set(ALL_PROJECTIONS)


def test_a_bucketed_batch_is_sized_at_max_length_rounded_up_to_the_bucket():
    """The collator truncates to max_length and then pads to the multiple, so a row can be 2000 -> 2048 wide;
    the memory estimate (micro-batch choice, preflight) sizes that, not max_length."""
    from cleanroom.memory import QWEN25_ARCHS
    from cleanroom.training.micro_batch import stage_estimate

    assert TrainSpec(max_length=2000).padded_length == 2000
    assert TrainSpec(max_length=2000, pad_to_multiple_of=256).padded_length == 2048
    assert TrainSpec(max_length=2048, pad_to_multiple_of=256).padded_length == 2048
    arch, lora = QWEN25_ARCHS["Qwen2.5-0.5B"], LoraSpec(r=8)
    for dpo in (False, True):
        bucketed = stage_estimate(TrainSpec(max_length=2000, pad_to_multiple_of=256), arch, "nf4", lora, dpo=dpo)
        assert bucketed == stage_estimate(TrainSpec(max_length=2048), arch, "nf4", lora, dpo=dpo)
        assert bucketed != stage_estimate(TrainSpec(max_length=2000), arch, "nf4", lora, dpo=dpo)

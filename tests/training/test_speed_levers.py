"""The speed levers (no fp32 upcast, padding-free, bucketed padding, precomputed DPO reference) keep the losses
and the guard."""

from __future__ import annotations

import math

import pytest
import torch

from cleanroom.errors import ConfigError, ContaminationError, GateError
from cleanroom.training import dpo as dpo_mod
from cleanroom.training import sft as sft_mod
from cleanroom.training import train_dpo, train_sft

pytestmark = pytest.mark.slow

PAIRS = [{"prompt": "Say yes:", "chosen": " yes", "rejected": " no, never"},
         {"prompt": "Q: the colour of the sky?\nA:", "chosen": " blue, mostly, in the day", "rejected": " green"}] * 2
IM_START = 151644  # <|im_start|>, a chat-control ID the guard forbids in base-model data


def test_no_fp32_upcast_keeps_bf16_weights_and_the_upcast_loss_curve(varied, load_tiny, lora, spec, tmp_path):
    """nf4 base loaded in bf16: with the upcast the embedding and norms become fp32, without it they stay bf16
    (what TRL's trainers do); the LoRA weights are TRL's bf16 either way. The weights hold the same bf16 values in
    both, so the curves differ only by rounding in the ops that read them: 3 steps agree within 5e-3 nats
    (on this CPU 1e-3 was seen), far under the 0.05-nat tolerance of docs/training-speed.md."""
    curves = {}
    for upcast in (True, False):
        model, tok = load_tiny(quantization="nf4", dtype="bfloat16")
        res = train_sft(model, tok, varied * 2, lora=lora, output_dir=tmp_path / str(upcast),
                        train=spec(kbit_fp32_upcast=upcast, max_steps=3, save_steps=100, gradient_checkpointing=True))
        dtypes = {n: p.dtype for n, p in res.model.named_parameters()}
        kept = {d for n, d in dtypes.items() if "embed_tokens" in n or "norm" in n}
        assert kept == ({torch.float32} if upcast else {torch.bfloat16})
        assert {d for n, d in dtypes.items() if "lora_" in n} == {torch.bfloat16}
        assert res.levers["kbit_fp32_upcast"]["on"] is upcast
        curves[upcast] = res.losses
    assert curves[False] == pytest.approx(curves[True], abs=5e-3)


def test_precomputed_reference_starts_at_ln2_and_follows_the_live_reference(load_tiny, lora, spec, tmp_path):
    """fp32 on the CPU: with the reference log-probs computed once before training, step 0 is still ln 2 with a
    zero margin and the 3-step trajectory is the live reference's within 1e-5; the cache's sha256 is recorded."""
    runs = {}
    for precompute in (False, True):
        model, tok = load_tiny()
        runs[precompute] = train_dpo(model, tok, PAIRS, lora=lora, beta=0.1, output_dir=tmp_path / str(precompute),
                                     train=spec(max_steps=3, save_steps=3, learning_rate=2e-2,
                                                precompute_ref_log_probs=precompute))
    live, cached = runs[False], runs[True]
    assert cached.step0_loss == pytest.approx(math.log(2), abs=1e-6) and cached.step0_margin == pytest.approx(0, abs=1e-6)
    assert cached.losses == pytest.approx(live.losses, abs=1e-5)
    assert live.losses[-1] < math.log(2) - 1e-3  # it trained: the agreement is not two flat curves
    record = cached.levers["precompute_ref_log_probs"]
    assert record["on"] and len(record["sha256"]) == 64 and record["seconds"] > 0 and record["setup_seconds"] >= 0
    assert "sha256" not in live.levers["precompute_ref_log_probs"]


def test_a_stale_precomputed_reference_fails_the_step0_check(load_tiny, lora, spec, tmp_path, monkeypatch):
    """Reference log-probs that are not the policy's (here shifted by 0.05 nats on the chosen side, as a cache
    from other weights would be) move the step-0 margin to beta * -0.05 = -0.005: the check refuses to train."""
    from trl import DPOTrainer

    true_ref = DPOTrainer.compute_ref_log_probs

    def shifted(self, model, inputs):
        chosen, rejected = true_ref(self, model, inputs)
        return chosen + 0.05, rejected

    monkeypatch.setattr(DPOTrainer, "compute_ref_log_probs", shifted)
    model, tok = load_tiny()
    with pytest.raises(GateError, match="reward margin -0.005"):
        train_dpo(model, tok, PAIRS, lora=lora, beta=0.1, output_dir=tmp_path,
                  train=spec(max_steps=1, precompute_ref_log_probs=True))


def test_sft_refuses_precomputed_reference(varied, load_tiny, lora, spec, tmp_path):
    model, tok = load_tiny()
    with pytest.raises(ConfigError, match="precompute_ref_log_probs is a DPO option"):
        train_sft(model, tok, varied, lora=lora, train=spec(precompute_ref_log_probs=True), output_dir=tmp_path)


def _planted_sft(render):
    def plant(*args, **kwargs):
        rows = render(*args, **kwargs)
        rows[1]["input_ids"][rows[1]["prompt_length"]] = IM_START  # first completion token of row 1
        rows[1]["labels"][rows[1]["prompt_length"]] = IM_START
        return rows

    return plant


def _planted_dpo(render):
    def plant(*args, **kwargs):
        rows = render(*args, **kwargs)
        rows[1]["rejected_ids"][0] = IM_START
        return rows

    return plant


@pytest.mark.parametrize("levers", [{}, {"kbit_fp32_upcast": False, "padding_free": True}, {"pad_to_multiple_of": 16}])
def test_guard_catches_a_planted_control_token_in_each_sft_mode(varied, load_tiny, lora, spec, tmp_path, monkeypatch, levers):
    """A control ID slipped past rendering (as a trainer-side rewrite would) reaches the collator, which refuses
    the batch in every mode (nf4 for the no-upcast lever, which only acts on a quantized model)."""
    monkeypatch.setattr(sft_mod, "render_examples", _planted_sft(sft_mod.render_examples))
    model, tok = load_tiny(quantization="nf4") if "kbit_fp32_upcast" in levers else load_tiny()
    with pytest.raises(ContaminationError, match=str(IM_START)):
        train_sft(model, tok, varied, lora=lora, train=spec(batch_size=4, **levers), output_dir=tmp_path)


@pytest.mark.parametrize("levers", [{}, {"precompute_ref_log_probs": True}, {"pad_to_multiple_of": 16},
                                    {"padding_free": True}])
def test_guard_catches_a_planted_control_token_in_each_dpo_mode(load_tiny, lora, spec, tmp_path, monkeypatch, levers):
    """With the reference precomputed, the precompute pass goes through the guarded collator too: the planted
    ID is refused before any reference log-prob is cached."""
    monkeypatch.setattr(dpo_mod, "render_pairs", _planted_dpo(dpo_mod.render_pairs))
    model, tok = load_tiny()
    with pytest.raises(ContaminationError, match=str(IM_START)):
        train_dpo(model, tok, PAIRS, lora=lora, beta=0.1, output_dir=tmp_path, train=spec(batch_size=4, **levers))


def test_bucketed_padding_pads_to_the_multiple_and_keeps_the_losses(varied, load_tiny, lora, spec, tmp_path,
                                                                    monkeypatch):
    """``pad_to_multiple_of`` (for a compiled backend's few shapes): every SFT and DPO batch is a multiple of 16
    tokens wide with the extra positions masked, and the curves equal the unbucketed ones (fp32 on the CPU: the
    masked positions change nothing but summation order), DPO's step 0 still ln 2."""
    from cleanroom.training import collate
    from cleanroom.training.collate import GuardedLanguageModelingCollator, GuardedPreferenceCollator

    model, tok = load_tiny()
    rows = sft_mod.render_examples(tok, varied, max_length=64, name="sft")
    for collator, batch_rows in ((GuardedLanguageModelingCollator(tok, pad_to_multiple_of=16), rows[:3]),
                                 (GuardedPreferenceCollator(tok, pad_to_multiple_of=16), dpo_mod.render_pairs(tok, PAIRS, 64))):
        batch = collator(batch_rows)
        plain = type(collator)(tok)(batch_rows)
        assert batch["input_ids"].shape[1] % 16 == 0 and batch["input_ids"].shape[1] > plain["input_ids"].shape[1]
        assert torch.equal(batch["attention_mask"].sum(1), plain["attention_mask"].sum(1))
    widths: dict[tuple, list[int]] = {}  # every batch width a trainer was handed, per (bucket, stage) run
    run: list[tuple] = []
    guarded = collate._GuardedCollator.__call__

    def record(self, examples):
        batch = guarded(self, examples)
        widths.setdefault(run[-1], []).append(batch["input_ids"].shape[1])
        return batch

    monkeypatch.setattr(collate._GuardedCollator, "__call__", record)
    curves = {}
    for bucket in (None, 16):
        model, tok = load_tiny()
        run.append((bucket, "sft"))
        curves[bucket] = train_sft(model, tok, varied * 2, lora=lora, output_dir=tmp_path / f"sft{bucket}",
                                   train=spec(max_steps=2, save_steps=100, pad_to_multiple_of=bucket))
        model, tok = load_tiny()
        run.append((bucket, "dpo"))
        curves[bucket, "dpo"] = train_dpo(model, tok, PAIRS, lora=lora, beta=0.1, output_dir=tmp_path / f"dpo{bucket}",
                                          train=spec(max_steps=2, save_steps=100, learning_rate=2e-2,
                                                     pad_to_multiple_of=bucket))
    # the lever reached both trainers' collators: every trained batch is bucketed, and without it some are not
    for stage in ("sft", "dpo"):
        assert widths[16, stage] and all(w % 16 == 0 for w in widths[16, stage]), (stage, widths)
        assert any(w % 16 for w in widths[None, stage]), (stage, widths)
    assert curves[16].losses == pytest.approx(curves[None].losses, abs=1e-4)
    assert curves[16].levers["pad_to_multiple_of"] == {"on": True, "value": 16,
                                                       "reason": curves[16].levers["pad_to_multiple_of"]["reason"]}
    assert curves[16, "dpo"].losses == pytest.approx(curves[None, "dpo"].losses, abs=1e-5)
    assert curves[16, "dpo"].step0_loss == pytest.approx(math.log(2), abs=1e-6)
    with pytest.raises(ConfigError, match="pad_to_multiple_of"):
        spec(padding_free=True, pad_to_multiple_of=16)


def test_micro_batch_from_the_memory_model_keeps_the_global_batch_and_the_losses(varied, load_tiny, lora, spec,
                                                                                  tmp_path):
    """A budget between the memory model's estimates (+10%) for 2 and 4 rows splits batch 4 into 2 accumulated
    micro-batches of 2; the optimizer still sees 4 rows a step, so the 2-step curve is batch 4's within 1e-4
    (fp32 on the CPU: only the summation order differs)."""
    from cleanroom import memory

    model, tok = load_tiny()
    arch = memory.arch_from_config(model.config.to_dict())

    def peak(m: int) -> int:  # the estimate with the micro-batch choice's 10% margin on the allocated part
        est = memory.estimate_peak_memory(arch, quantization="bf16", lora_r=lora.r, lora_targets=lora.targets,
                                          batch_size=m, seq_len=64, gradient_checkpointing=False)
        return int(est.allocated_bytes * 1.10) + est.parts["cuda_context"]

    budget = (peak(2) + peak(4)) / 2 / 2**30
    fixed = train_sft(model, tok, varied * 2, lora=lora, output_dir=tmp_path / "fixed",
                      train=spec(batch_size=4, max_steps=2, save_steps=100))
    model, tok = load_tiny()
    split = train_sft(model, tok, varied * 2, lora=lora, output_dir=tmp_path / "split",
                      train=spec(batch_size=4, max_steps=2, save_steps=100, micro_batch_budget_gib=budget))
    record = split.levers["micro_batch"]
    assert (record["micro_batch"], record["accumulation"], record["per_device_batch"]) == (2, 2, 4)
    assert fixed.levers["micro_batch"]["on"] is False
    assert split.losses == pytest.approx(fixed.losses, abs=1e-4)
    with pytest.raises(ConfigError, match="even one row of 64 tokens is estimated at"):
        train_sft(model, tok, varied, lora=lora, output_dir=tmp_path / "none",
                  train=spec(micro_batch_budget_gib=peak(1) / 2**30 / 2))


def test_ref_logps_digest_is_the_sha256_of_the_two_float32_columns():
    """By hand: sha256("ref_chosen_logps" + the chosen values as little-endian float32 + the same for rejected)."""
    import hashlib
    import struct

    from datasets import Dataset

    data = Dataset.from_dict({"ref_chosen_logps": [-1.5, -2.25], "ref_rejected_logps": [-3.0, -0.5]})
    expected = hashlib.sha256(b"ref_chosen_logps" + struct.pack("<2f", -1.5, -2.25)
                              + b"ref_rejected_logps" + struct.pack("<2f", -3.0, -0.5)).hexdigest()
    assert dpo_mod.ref_logps_digest(data) == expected
    swapped = Dataset.from_dict({"ref_chosen_logps": [-3.0, -0.5], "ref_rejected_logps": [-1.5, -2.25]})
    assert dpo_mod.ref_logps_digest(swapped) != expected

"""The memory model: hand-derived parameter counts and bytes, monotonicity, checkpointing, max batch, bad input."""

from __future__ import annotations

import pytest

from cleanroom.errors import ConfigError
from cleanroom.memory import (
    CHECKPOINT_FIXED_BYTES,
    QWEN25_ARCHS,
    arch_from_config,
    checkpoint_bytes,
    count_params,
    estimate_dpo_peak_memory,
    estimate_peak_memory,
    lora_param_count,
    max_batch_that_fits,
)

ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
KW = dict(quantization="nf4", lora_r=64, lora_targets=ALL, seq_len=2048, gradient_checkpointing=True)


def test_qwen25_parameter_counts_match_the_published_sizes():
    # 7B: embed 152064*3584 = 544,997,376 (x2, untied); per layer q,o 3584^2 = 12,845,056 each, k,v 3584*512 =
    # 1,835,008 each, MLP 3*3584*18944 = 203,685,888 -> 233,046,016 * 28 = 6,525,288,448 linear weights.
    c = count_params("Qwen2.5-7B")
    assert c["linear"] == 6_525_288_448 and c["embed"] == c["lm_head"] == 544_997_376
    totals = {n: sum(count_params(n).values()) / 1e9 for n in QWEN25_ARCHS}
    assert totals["Qwen2.5-0.5B"] == pytest.approx(0.494, abs=0.002)
    assert totals["Qwen2.5-7B"] == pytest.approx(7.616, abs=0.002)
    assert totals["Qwen2.5-32B"] == pytest.approx(32.76, abs=0.01)


def test_lora_parameters_of_32b_r64_all_projections():
    # per layer sum(in+out): q,o 10240 each, k,v 6144 each, gate,up,down 32768 each = 131,072; x r 64 x 64 layers.
    est = estimate_peak_memory("Qwen2.5-32B", batch_size=1, **KW)
    assert est.n_lora_params == 131_072 * 64 * 64 == 536_870_912
    assert est.parts["lora"] == 536_870_912 * 8  # bf16 adapters on a 4-bit base: 2+2+4 bytes


def test_checkpoint_bytes_of_32b_r64():
    """One adapters-only checkpoint of the production profile (nf4, r=64 on all projections).

    N = 536,870,912 LoRA parameters (above). bf16 adapter 2 B + paged_adamw_8bit moments 1 + 1 B = 4 B:
    2,147,483,648 B + 32 MiB fixed (33,554,432) = 2,181,038,080 B (2.18 GB). torch AdamW keeps its
    moments in the parameter's dtype: on a bf16 base the adapter is fp32, 4 + 2 * 4 = 12 B per parameter.
    """
    n = lora_param_count("Qwen2.5-32B", lora_r=64, lora_targets=ALL)
    assert n == 536_870_912
    assert checkpoint_bytes(n, quantization="nf4", optim="paged_adamw_8bit") == 2_181_038_080
    assert checkpoint_bytes(n, quantization=None, optim="adamw_torch") == n * 12 + CHECKPOINT_FIXED_BYTES
    assert checkpoint_bytes(n, quantization="nf4", optim="paged_adamw_32bit") == n * 10 + CHECKPOINT_FIXED_BYTES
    with pytest.raises(ConfigError, match="optim"):
        checkpoint_bytes(n, quantization="nf4", optim="sgd")


def test_dpo_estimate_adds_the_reference_forward_to_the_policy_on_both_sides():
    """0.5B, b=1, s=512: the policy runs at batch 2 (chosen + rejected); the reference adds, for 1024 tokens,
    one layer's activations 1024 * (16 * 896 + 8 * 4864 + 4 * 128) = 1024 * 53,760 = 55,050,240 B and its
    chunked log-probabilities in the head's dtype, 1024 * 32768 * 2 = 67,108,864 B (bf16; x 2 in fp32 after
    the upcast)."""
    kw = {**KW, "seq_len": 512}
    dpo = estimate_dpo_peak_memory("Qwen2.5-0.5B", batch_size=1, **kw)
    policy = estimate_peak_memory("Qwen2.5-0.5B", batch_size=2, **kw)
    assert dpo.parts["ref_activations"] == 55_050_240 and dpo.parts["ref_logits"] == 67_108_864
    assert dpo.total_bytes == policy.total_bytes + 55_050_240 + 67_108_864
    upcast = estimate_dpo_peak_memory("Qwen2.5-0.5B", batch_size=1, kbit_fp32_upcast=True, **kw)
    assert upcast.parts["ref_logits"] == 2 * 67_108_864
    assert dpo.total_bytes > estimate_peak_memory("Qwen2.5-0.5B", batch_size=1, **kw).total_bytes


def test_arch_from_config_json():
    # a Qwen2.5-7B config.json gives the same counts as the named architecture; no num_key_value_heads = MHA
    cfg = {**QWEN25_ARCHS["Qwen2.5-7B"], "model_type": "qwen2", "rope_theta": 1e6}
    assert count_params(arch_from_config(cfg)) == count_params("Qwen2.5-7B")
    mha = {k: v for k, v in cfg.items() if k != "num_key_value_heads"}
    assert arch_from_config(mha)["num_key_value_heads"] == 28
    assert arch_from_config({"text_config": cfg}) == arch_from_config(cfg)
    with pytest.raises(ConfigError, match="intermediate_size"):
        arch_from_config({k: v for k, v in cfg.items() if k != "intermediate_size"})


def test_nf4_weights_are_about_a_quarter_of_bf16():
    nf4 = estimate_peak_memory("Qwen2.5-7B", batch_size=1, **KW).parts["weights"]
    upcast = estimate_peak_memory("Qwen2.5-7B", batch_size=1, kbit_fp32_upcast=True, **KW).parts["weights"]
    bf16 = estimate_peak_memory("Qwen2.5-7B", batch_size=1, **{**KW, "quantization": "bf16"}).parts["weights"]
    # linear 6.53e9 * 0.51587 B = 3.366 GB + (embed + head + (2L+1) norms + q/k/v biases) = 1.0903e9 params
    # * 2 B (bf16, TrainSpec's default) = 2.181 GB -> 5.55 GB, vs bf16 (6.525e9 + 1.0903e9) * 2 = 15.23 GB:
    # ratio 0.364 (the linear weights alone are at 0.258 of bf16); with the fp32 upcast
    # (prepare_model_for_kbit_training) the 1.0903e9 params take 4 B: 4.361 GB -> 7.73 GB, ratio 0.507
    other = 2 * 544_997_376 + 57 * 3584 + 28 * (3584 + 2 * 512)
    assert nf4 == pytest.approx(6_525_288_448 * 0.515869140625 + other * 2, rel=1e-6)
    assert upcast == pytest.approx(6_525_288_448 * 0.515869140625 + other * 4, rel=1e-6)
    assert 0.36 < nf4 / bf16 < 0.37 and 0.50 < upcast / bf16 < 0.52
    # the upcast only acts on a quantized base
    assert estimate_peak_memory("Qwen2.5-7B", batch_size=1, kbit_fp32_upcast=True,
                                **{**KW, "quantization": "bf16"}).parts["weights"] == bf16


def test_activations_grow_with_batch_and_checkpointing_saves_memory():
    small = estimate_peak_memory("Qwen2.5-1.5B", batch_size=1, **KW)
    big = estimate_peak_memory("Qwen2.5-1.5B", batch_size=4, **KW)
    no_gc = estimate_peak_memory("Qwen2.5-1.5B", batch_size=4, **{**KW, "gradient_checkpointing": False})
    assert big.parts["activations"] == pytest.approx(4 * small.parts["activations"])
    # TRL's chunked LM head: b s tokens x 32768 vocabulary columns in the head's dtype, not live together with one
    # layer's recomputation (1.5B: 16 * 1536 + 8 * 8960 + 4 * 256 = 97,280 B per token), so only the chunk's
    # excess over it counts: none for a bf16 head (65,536 B per token), 131,072 - 97,280 = 33,792 B for an fp32 one
    assert big.parts["logits"] == small.parts["logits"] == 0
    up_small, up_big = (estimate_peak_memory("Qwen2.5-1.5B", batch_size=b, kbit_fp32_upcast=True, **KW) for b in (1, 4))
    assert up_big.parts["logits"] == 4 * up_small.parts["logits"] == 4 * 2048 * 33_792
    full = estimate_peak_memory("Qwen2.5-1.5B", batch_size=4, chunked_logits=False, **KW)
    assert full.parts["logits"] == 4 * 2048 * 151936 * 6  # materialised bf16 logits + fp32 copy
    assert no_gc.parts["activations"] > 5 * big.parts["activations"]
    assert big.allocated_bytes == big.total_bytes - big.parts["cuda_context"]


def test_max_batch_that_fits_is_the_boundary():
    budget = 80 * 10**9
    b = max_batch_that_fits("Qwen2.5-32B", budget, **KW)
    assert b >= 1
    assert estimate_peak_memory("Qwen2.5-32B", batch_size=b, **KW).total_bytes <= budget
    assert estimate_peak_memory("Qwen2.5-32B", batch_size=b + 1, **KW).total_bytes > budget
    assert max_batch_that_fits("Qwen2.5-32B", 10 * 10**9, **KW) == 0  # 32B nf4 weights alone are ~18 GiB


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"quantization": "fp8"}, "quantization"), ({"lora_r": 0}, "lora_r"), ({"lora_targets": ("lm_head",)}, "lora_targets")],
)
def test_bad_input_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        estimate_peak_memory("Qwen2.5-0.5B", batch_size=1, **{**KW, **kwargs})
    with pytest.raises(ConfigError, match="unknown architecture"):
        estimate_peak_memory("Qwen9-1B", batch_size=1, **KW)
    with pytest.raises(ConfigError, match="hidden_size"):
        estimate_peak_memory({"vocab_size": 10}, batch_size=1, **KW)


def test_per_gpu_plan_ddp_replicates_weights_and_says_when_fsdp_is_needed():
    from cleanroom.memory import MemoryEstimate, per_gpu_plan

    gib = 1 << 30
    # weights 60 + lora 1 + context 1 = 62 GiB fixed, 10 GiB of activations: 72 GiB on one GPU
    est = MemoryEstimate(total_bytes=72 * gib, parts={"weights": 60 * gib, "lora": gib, "activations": 10 * gib,
                                                      "cuda_context": gib}, n_params=0, n_lora_params=gib // 16)
    one = per_gpu_plan(est, budget_bytes=80 * gib, n_gpus=1)
    assert one == {"n_gpus": 1, "per_gpu_bytes": 72 * gib, "fits": True, "fsdp_needed": False, "reason": None}
    # 2 ranks: + a fp32 gradient bucket of the LoRA parameters, 4 x gib/16 = 0.25 GiB
    two = per_gpu_plan(est, budget_bytes=80 * gib, n_gpus=2)
    assert two["per_gpu_bytes"] == 72 * gib + gib // 4 and two["fits"] and not two["fsdp_needed"]
    # a 48 GiB GPU: 62.25 GiB fixed per GPU does not fit on any number of DDP ranks -> FSDP (60 / 4 = 15 GiB)
    small = per_gpu_plan(est, budget_bytes=48 * gib, n_gpus=4)
    assert small["fsdp_needed"] and not small["fits"]
    assert "62.2 GiB exceed the 48.0 GiB" in small["reason"] and "15.0 GiB per GPU" in small["reason"]
    with pytest.raises(ConfigError, match="n_gpus = 0"):
        per_gpu_plan(est, budget_bytes=gib, n_gpus=0)


#: Peaks measured on an NVIDIA H200 (GPU gate check 8 / benchmarks/bench_memory_model.py; nf4, r=64 on all
#: projections, gradient checkpointing, seq 512), GiB of max_memory_allocated: (arch, batch, upcast) -> GiB.
#: Session 13 with the fp32 upcast, session 16 without it (TrainSpec's default).
H200_PEAKS = {
    ("Qwen2.5-0.5B", 1, True): 1.129, ("Qwen2.5-0.5B", 4, True): 1.306, ("Qwen2.5-1.5B", 1, True): 2.241,
    ("Qwen2.5-1.5B", 4, True): 2.733, ("Qwen2.5-7B", 1, True): 8.797, ("Qwen2.5-7B", 4, True): 9.907,
    ("Qwen2.5-0.5B", 1, False): 0.8183, ("Qwen2.5-0.5B", 4, False): 0.8522, ("Qwen2.5-1.5B", 1, False): 1.803,
    ("Qwen2.5-1.5B", 4, False): 1.9229, ("Qwen2.5-7B", 1, False): 6.6845, ("Qwen2.5-7B", 4, False): 7.0841,
}


@pytest.mark.parametrize(("arch", "batch", "upcast"), sorted(H200_PEAKS))
def test_the_estimate_reproduces_the_measured_h200_peaks(arch, batch, upcast):
    """Every calibration point within 10% (the gate's check 8 allows 15% on the GPU it runs on)."""
    est = estimate_peak_memory(arch, quantization="nf4", lora_r=64, lora_targets=ALL, batch_size=batch, seq_len=512,
                               gradient_checkpointing=True, kbit_fp32_upcast=upcast)
    assert est.allocated_bytes / 2**30 == pytest.approx(H200_PEAKS[arch, batch, upcast], rel=0.10)

"""The memory model: hand-derived parameter counts and bytes, monotonicity, checkpointing, max batch, bad input."""

from __future__ import annotations

import pytest

from cleanroom.errors import ConfigError
from cleanroom.memory import QWEN25_ARCHS, count_params, estimate_peak_memory, max_batch_that_fits

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


def test_nf4_weights_are_about_a_quarter_of_bf16():
    nf4 = estimate_peak_memory("Qwen2.5-7B", batch_size=1, **KW).parts["weights"]
    bf16 = estimate_peak_memory("Qwen2.5-7B", batch_size=1, **{**KW, "quantization": "bf16"}).parts["weights"]
    # linear 6.53e9 * 0.51587 B = 3.366 GB + (embed + head + (2L+1) norms + q/k/v biases) = 1.0903e9 params
    # * 4 B (fp32 after prepare_model_for_kbit_training) = 4.361 GB -> 7.73 GB, vs bf16 (6.525e9 + 1.0903e9) * 2
    # = 15.23 GB: ratio 0.507 (the linear weights alone are at 0.258 of bf16)
    assert nf4 == pytest.approx(6_525_288_448 * 0.515869140625 + (2 * 544_997_376 + 57 * 3584 + 28 * (3584 + 2 * 512)) * 4, rel=1e-6)
    assert 0.50 < nf4 / bf16 < 0.52


def test_activations_grow_with_batch_and_checkpointing_saves_memory():
    small = estimate_peak_memory("Qwen2.5-1.5B", batch_size=1, **KW)
    big = estimate_peak_memory("Qwen2.5-1.5B", batch_size=4, **KW)
    no_gc = estimate_peak_memory("Qwen2.5-1.5B", batch_size=4, **{**KW, "gradient_checkpointing": False})
    assert big.parts["activations"] == pytest.approx(4 * small.parts["activations"])
    # TRL's chunked LM head: b s tokens x 32768 vocabulary columns x 4 B (fp32) at a time
    assert big.parts["logits"] == 4 * small.parts["logits"] == 4 * 2048 * 32768 * 4
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

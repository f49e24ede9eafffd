"""cleanroom.generation: every engine greedy-equal to hf, sampling seeded per record, stops, guard, refusals."""

from __future__ import annotations

import pytest

from cleanroom import dense_decoding, generation, guard
from cleanroom.errors import ConfigError, ContaminationError, InputError
from cleanroom.generation import choose_engine, generate, greedy_divergences, record_seed
from cleanroom.ifeval.prompting import STOP, few_shot_prompt
from cleanroom.loader import CleanModelLoader

ENGINES = ("hf", "static", "paged")
TOPICS = ("rain", "the sea", "a cat", "winter", "bread", "a train", "music", "the moon")
TASKS = ("Write a haiku about {}.", "List three facts about {}.", "Describe {} in one sentence.",
         "Write a title about {} in capital letters.", "Explain {} to a child.", "Give two words for {}.",
         "Write a question about {}.", "Name a color that fits {}.")
#: 64 distinct short instructions (parity and sampling: short prompts keep the CPU suite fast)
PROMPTS = [f"Question: {t.format(x)}\nAnswer:" for t in TASKS for x in TOPICS]
#: the few-shot format every stage uses, for the stopping test
FEW_SHOT = [few_shot_prompt(t.format("rain")) for t in TASKS]


@pytest.fixture(scope="module")
def tiny(tiny_base_model):
    model, tok, _ = CleanModelLoader(tiny_base_model).load()
    return model, tok


@pytest.fixture(scope="module")
def smollm2(smollm2_instruct):
    gguf = next(smollm2_instruct.glob("*.gguf")).name
    model, tok, _ = CleanModelLoader(smollm2_instruct, gguf_file=gguf, dtype="float32", allow_instruct=True,
                                     allow_instruct_reason="a real model that writes and stops, for engine parity").load()
    return model, tok


def test_rejects_empty_prompts_by_index_and_bad_settings(tiny):
    model, tok = tiny
    with pytest.raises(InputError, match="prompt 0 is empty"):
        generate(model, tok, [""], max_new_tokens=2)
    with pytest.raises(InputError, match="prompt 1 is empty"):
        generate(model, tok, ["a", ""], max_new_tokens=2)
    with pytest.raises(ConfigError, match="2 seeds for 3 prompts"):
        generate(model, tok, ["a", "b", "c"], max_new_tokens=2, temperature=1.0, seeds=[1, 2])
    with pytest.raises(ConfigError, match="generation.engine='vllm'"):
        generate(model, tok, ["a"], max_new_tokens=2, engine="vllm")


def test_auto_is_hf_on_cpu_and_paged_refuses_sampling(tiny):
    model, _ = tiny
    engine, reason = choose_engine("auto", model, sampling=True)
    assert engine == "hf" and "cpu" in reason
    assert choose_engine("static", model, sampling=True)[0] == "static"
    with pytest.raises(ConfigError, match="paged cannot sample with per-record seeds"):
        choose_engine("paged", model, sampling=True)


@pytest.fixture(scope="module")
def tiny_reference(tiny):
    model, tok = tiny
    return generate(model, tok, PROMPTS, max_new_tokens=6, batch_size=16, engine="hf")


@pytest.mark.parametrize("engine", ENGINES[1:])
def test_greedy_equals_hf_on_64_prompts_tiny(tiny, tiny_reference, engine):
    model, tok = tiny
    ref = tiny_reference
    out = generate(model, tok, PROMPTS, max_new_tokens=6, batch_size=16, engine=engine)
    assert out.engine == engine and len(out.token_ids) == 64
    assert greedy_divergences(model, tok, PROMPTS, ref, out, tie_tol=1e-3) == []


@pytest.fixture(scope="module")
def smollm2_reference(smollm2):
    model, tok = smollm2
    return generate(model, tok, PROMPTS, max_new_tokens=8, batch_size=32, stop=["\nQuestion:"], engine="hf")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES[1:])
def test_greedy_equals_hf_on_64_prompts_smollm2(smollm2, smollm2_reference, engine):
    """A real model that writes different text per prompt and stops, so the comparison has teeth."""
    model, tok = smollm2
    ref = smollm2_reference
    assert len(set(ref.texts)) > 32  # distinct continuations: equal outputs are not trivially equal
    out = generate(model, tok, PROMPTS, max_new_tokens=8, batch_size=32, stop=["\nQuestion:"], engine=engine)
    assert greedy_divergences(model, tok, PROMPTS, ref, out, tie_tol=1e-3) == []


def with_lora(model):
    """*model* with a random (non-zero) LoRA on q/v, so the adapter visibly shapes what it generates."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))


def static_keeps_the_adapter(peft_model, tok, *, tie_tol, min_dropped):
    """The static engine matches ``hf`` with the adapter, and the parity check catches it generating without
    (at least *min_dropped* of 16 prompts diverge); returns (prompts, hf reference, static result)."""
    prompts = PROMPTS[:16]
    ref = generate(peft_model, tok, prompts, max_new_tokens=6, batch_size=16, engine="hf")
    same = generate(peft_model, tok, prompts, max_new_tokens=6, batch_size=16, engine="static")
    assert greedy_divergences(peft_model, tok, prompts, ref, same, tie_tol=tie_tol) == []
    with peft_model.disable_adapter():  # what an engine that loses the adapter would generate
        dropped = generate(peft_model, tok, prompts, max_new_tokens=6, batch_size=16, engine="static")
    assert len(greedy_divergences(peft_model, tok, prompts, ref, dropped, tie_tol=tie_tol)) >= min_dropped
    return prompts, ref, same


@pytest.mark.slow
def test_parity_check_fails_when_an_engine_drops_the_adapter(smollm2):
    """The parity test has teeth: the same engine generating without the LoRA adapter is caught."""
    model, tok = smollm2
    peft_model = with_lora(model)
    try:
        static_keeps_the_adapter(peft_model, tok, tie_tol=1e-3, min_dropped=8)
    finally:
        peft_model.unload()


@pytest.mark.parametrize("engine", ENGINES[:2])
def test_sampling_is_per_record_whatever_the_batch(smollm2, engine):
    model, tok = smollm2
    prompts = PROMPTS[:6]
    seeds = [record_seed(3407, f"k{i}") for i in range(6)]
    runs = [generate(model, tok, prompts, max_new_tokens=8, temperature=0.8, top_p=0.95, seeds=seeds,
                     batch_size=bs, engine=engine).texts for bs in (1, 4, 6)]
    assert runs[0] == runs[1] == runs[2]
    alone = generate(model, tok, prompts[3:4], max_new_tokens=8, temperature=0.8, top_p=0.95, seeds=seeds[3:4],
                     engine=engine).texts
    assert alone == runs[0][3:4]  # a record's text does not depend on its neighbours
    other = generate(model, tok, prompts, max_new_tokens=8, temperature=0.8, top_p=0.95,
                     seeds=[s + 1 for s in seeds], batch_size=6, engine=engine).texts
    assert other != runs[0]  # and it does depend on its seed


def test_record_seed_depends_on_seed_and_key_only():
    assert record_seed(3407, "a") == record_seed(3407, "a")
    assert len({record_seed(3407, "a"), record_seed(3407, "b"), record_seed(3408, "a")}) == 3
    assert 0 <= record_seed(2**31, "x") < 2**63


@pytest.mark.parametrize("engine", ENGINES)
def test_stops_at_eos_or_stop_string_not_after(smollm2, engine):
    """Generated tokens per response <= kept tokens + 1 (the EOS) when the model stops by EOS, and + the stop
    string's own tokens when it stops by the stop string: no decoding is spent after the answer ends."""
    model, tok = smollm2
    res = generate(model, tok, FEW_SHOT[:4], max_new_tokens=40, batch_size=4, stop=[STOP], engine=engine)
    stop_tokens = len(guard.encode(tok, STOP, add_bos=False))
    assert any(c < 40 for c in res.generated_counts), res.generated_counts  # something stopped early
    for text, kept, made in zip(res.texts, res.token_counts, res.generated_counts, strict=True):
        assert STOP not in text
        slack = 1 if made < 40 else 0
        assert kept <= made <= kept + max(slack, stop_tokens + (2 if engine == "paged" else 0))


@pytest.fixture()
def control_loving_model(tiny_base_model):
    """The tiny model with its output row of <|im_start|> scaled up: unsuppressed, greedy emits it always."""
    import torch

    model, tok, _ = CleanModelLoader(tiny_base_model, probe=False).load()
    with torch.no_grad():
        model.get_output_embeddings().weight[151644] *= 1000.0
    return model, tok


@pytest.mark.parametrize("engine", ENGINES)
def test_forbidden_ids_never_generated_and_outputs_scanned(control_loving_model, engine, monkeypatch):
    model, tok = control_loving_model
    seen: list[str] = []
    real_scan = guard.scan_ids
    monkeypatch.setattr(guard, "scan_ids", lambda *a, **k: (seen.append(k.get("where", "")), real_scan(*a, **k))[1])
    res = generate(model, tok, ["Hello world", "a b c", "x"], max_new_tokens=4, batch_size=2, engine=engine)
    assert all(151644 not in ids for ids in res.token_ids)
    assert "<|im_start|>" not in "".join(res.texts)
    assert {"generation batch 0", "generation batch 1", "generation output 0", "generation output 1"} <= set(seen)


def test_output_scan_catches_an_engine_that_stops_suppressing(control_loving_model, monkeypatch):
    """Meta-test of the output guard: with the suppression switched off the model emits <|im_start|>, and the
    scan of the returned IDs raises instead of passing it into data."""
    model, tok = control_loving_model
    monkeypatch.setattr(generation, "_suppressed_ids", lambda tokenizer: [])
    with pytest.raises(ContaminationError, match="generation output 0.*151644"):
        generate(model, tok, ["Hello world"], max_new_tokens=3, engine="hf")


@pytest.fixture(scope="module")
def tiny_nf4(tiny_base_model):
    model, tok, _ = CleanModelLoader(tiny_base_model, quantization="nf4").load()
    return model, tok


def test_static_decodes_4bit_with_dense_weights_and_restores_them(tiny_nf4, monkeypatch):
    """The static engine's dense decoding of an nf4 model: the same products, the 4-bit layers back after.

    On the CPU bitsandbytes multiplies repacked nf4 weights in bfloat16 (avx512bf16), the dense copy in the
    model's float32, so the logits agree to bfloat16 precision (2^-8 of |logit| <= 1: under 1e-2), not
    exactly; on CUDA the batched nf4 path *is* dequantize-then-matmul.
    """
    import bitsandbytes as bnb
    import torch

    # the tiny copies fit whatever else the machine runs; the 4 GiB GPU headroom is not what is tested here
    monkeypatch.setattr(dense_decoding, "DENSE_HEADROOM_BYTES", 0)
    model, tok = tiny_nf4
    ids = torch.tensor([guard.encode(tok, p)[:10] for p in PROMPTS[:4]])
    count = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    assert count > 0
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with dense_decoding.dequantized(model, enabled=True):
            assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
            dense = model(input_ids=ids).logits
        after = model(input_ids=ids).logits
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == count
    assert torch.equal(before, after)  # the 4-bit layers (and their quant state) are untouched
    assert (dense - before).abs().max().item() < 1e-2
    ref = generate(model, tok, PROMPTS, max_new_tokens=6, batch_size=16, engine="hf")
    try:
        out = generate(model, tok, PROMPTS, max_new_tokens=6, batch_size=16, engine="static")
        assert "4-bit layers" in out.engine_reason and "kept" not in out.engine_reason  # decoded dense
        assert greedy_divergences(model, tok, PROMPTS, ref, out, tie_tol=1e-2) == []
    finally:
        generation.release_dense(model)  # the module-scoped model goes back to 4-bit only, pass or fail


def test_dense_decoding_keeps_an_adapter_and_refuses_when_memory_is_short(tiny_nf4, monkeypatch):
    """A LoRA adapter on the nf4 base still shapes the dense decode (its wrapper calls the swapped base
    layer); when the dense copy does not fit, the 4-bit weights decode as they are and the reason says so."""
    monkeypatch.setattr(dense_decoding, "DENSE_HEADROOM_BYTES", 0)  # fits, however busy the machine is
    model, tok = tiny_nf4
    peft_model = with_lora(model)
    try:
        prompts, ref, out = static_keeps_the_adapter(peft_model, tok, tie_tol=1e-2, min_dropped=4)
        assert "dequantized once" in out.engine_reason
        generation.release_dense(peft_model)  # else the copies made above are reused without a memory check
        monkeypatch.setattr(dense_decoding, "DENSE_HEADROOM_BYTES", 2**60)
        kept = generate(peft_model, tok, prompts, max_new_tokens=6, batch_size=16, engine="static")
        assert "4-bit weights kept" in kept.engine_reason and "does not fit" in kept.engine_reason
        assert greedy_divergences(peft_model, tok, prompts, ref, kept, tie_tol=1e-2) == []
    finally:
        peft_model.unload()

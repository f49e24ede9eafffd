"""Base-or-instruct: name/eos markers and the behavioural probe flag SmolLM2-Instruct and pass the tiny base."""

from __future__ import annotations

import pytest

from cleanroom import probe
from cleanroom.errors import ContaminationError
from cleanroom.loader import CleanModelLoader
from cleanroom.probe import PROBE_DECISIVE, PROBE_THRESHOLD, name_markers, probe_model

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_name_markers():
    assert name_markers("/m/Qwen2.5-32B-Instruct")
    assert name_markers("gemma-2-9b-it")
    assert not name_markers("/models/Qwen2.5-32B", "/home/kit/tiny-qwen2.5-base")


def test_gguf_general_name_is_one_of_the_model_names(smollm2_instruct):
    assert CleanModelLoader(smollm2_instruct, gguf_file=GGUF)._model_names()[-1] == "Smollm2 135M 8k Lc100K Mix1 Ep2"


def test_name_markers_ignore_parent_folders():
    """Only the model's own name counts: an adapter inside runs/<id>/sft/ or under a chat/ folder is not one."""
    assert not name_markers("runs/20260101-abc/sft/adapter", "/data/chat/models/Qwen2.5-7B", "dpo/merged")
    assert name_markers("runs/x/Qwen2.5-7B-Instruct")


@pytest.fixture(scope="module")
def qwen_tok(qwen_base_tokenizer):
    """The clean Qwen2.5 tokenizer, loaded once: probe_model only reads it."""
    tok, _ = CleanModelLoader(qwen_base_tokenizer, probe=False).load_tokenizer(decide=False)
    return tok


@pytest.mark.parametrize(
    ("p_eot", "instruct", "warned"),
    [(0.01, False, False), (PROBE_THRESHOLD, False, True), (0.6, False, True), (PROBE_DECISIVE, True, False)],
)
def test_probe_alone_is_decisive_only_when_very_strong(qwen_tok, monkeypatch, p_eot, instruct, warned):
    """No static marker: p_eot in [0.2, 0.8) is a warning with its score; >= 0.8 refuses on its own."""
    monkeypatch.setattr(probe, "behavioural_scores", lambda model, tok: (p_eot, 0.99))
    result = probe_model(qwen_tok, model=object(), names=("/models/Qwen2.5-7B",))
    assert result.is_instruct is instruct and bool(result.warnings) is warned
    assert not warned or f"{p_eot:.3f}" in result.warnings[0]


def test_one_static_marker_is_decisive_even_with_a_low_probe(qwen_tok, monkeypatch):
    class Gen:
        eos_token_id = [151645, 151643]

    monkeypatch.setattr(probe, "behavioural_scores", lambda model, tok: (1e-5, 1e-5))
    assert probe_model(qwen_tok, model=object(), generation_config=Gen(), names=("base",)).is_instruct
    assert probe_model(qwen_tok, model=object(), names=("Qwen2.5-7B-Instruct",)).is_instruct


@pytest.mark.slow
def test_static_markers_refuse_smollm2_instruct_tokenizer(smollm2_instruct):
    with pytest.raises(ContaminationError, match="instruct"):
        CleanModelLoader(smollm2_instruct, gguf_file=GGUF).load_tokenizer()


@pytest.fixture(scope="module")
def smollm2_allowed(smollm2_instruct):
    """SmolLM2-Instruct through the clean loader with allow_instruct: one GGUF load (~20 s) for the tests that
    read the loaded model and its provenance (none of them changes the model)."""
    loader = CleanModelLoader(smollm2_instruct, gguf_file=GGUF, allow_instruct=True, allow_instruct_reason="probe test")
    return loader.load()


@pytest.mark.slow
def test_behavioural_probe_flags_smollm2_and_records_reason(smollm2_allowed):
    """The real instruct model scores above the warning threshold and is flagged (name, eos); all kept in provenance."""
    model, tok, prov = smollm2_allowed
    probe = prov["probe"]
    assert probe["is_instruct"] and probe["p_eot"] >= PROBE_THRESHOLD, probe
    assert probe["eot_in_eos"] and prov["allow_instruct_reason"] == "probe test"
    assert tok.eos_token == "<|endoftext|>" and model.generation_config.eos_token_id == 0
    assert prov["sentinels"]["reference"].startswith("none available") and prov["sentinels"]["failures"] == []


@pytest.mark.slow
def test_gguf_model_loads_dense_and_trainable(smollm2_allowed):
    """A GGUF model comes back as a plain dense model that transformers' Trainer accepts for fine-tuning.

    transformers 5.2x attaches a GGUF quantizer (not trainable) even when it dequantized every weight;
    SFT on the smollm2 profile then failed at trainer init. The loader asks for the dense form and
    detaches the quantizer.
    """
    import torch
    import transformers.trainer_utils as tu

    model, _tok, _prov = smollm2_allowed
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert "quantization_config" not in model.config.to_dict()
    assert all(p.dtype.is_floating_point and type(p) in (torch.Tensor, torch.nn.Parameter) for p in model.parameters())
    validate = getattr(tu, "validate_quantization_for_training", None)
    if validate is not None:  # transformers >= 5.2x: the check that refused the GGUF model
        validate(model)


def test_drop_gguf_quantizer_detaches_the_quantizer_of_a_dequantized_model_and_refuses_packed_weights(tiny_base_model):
    """The loader's fix on its own, where transformers still attaches one (5.2x; 5.25 no longer does for a dense
    GGUF load, so the SmolLM2 test above no longer reaches it): a model carrying a GGUF quantizer is refused by the
    Trainer's check, passes it once the quantizer is dropped, and one whose quantizer still packs weights is a
    ConfigError, not trained."""
    from transformers import GgufConfig
    from transformers.quantizers.quantizer_gguf import GgufHfQuantizer
    from transformers.trainer_utils import validate_quantization_for_training

    from cleanroom.errors import ConfigError
    from cleanroom.quantization import drop_gguf_quantizer

    def attached(packed: dict) -> object:
        model, _, _ = CleanModelLoader(tiny_base_model, probe=False, dtype="float32").load()
        config = GgufConfig(dequantize=True)
        model.hf_quantizer, model.is_quantized, model.config.quantization_config = GgufHfQuantizer(config), True, config
        model.hf_quantizer.packed_modules = packed
        return model

    model = attached({})
    with pytest.raises(ValueError, match="purely quantized"):
        validate_quantization_for_training(model)
    drop_gguf_quantizer(model, tiny_base_model / "m.gguf")
    validate_quantization_for_training(model)
    assert getattr(model, "hf_quantizer", None) is None and not model.is_quantized
    assert "quantization_config" not in model.config.to_dict()
    with pytest.raises(ConfigError, match="kept the GGUF weights packed"):
        drop_gguf_quantizer(attached({"model.layers.0.mlp": object()}), tiny_base_model / "m.gguf")


@pytest.mark.parametrize("bad", ["151643", True, 1.0, ["151643"], [True]])
def test_a_token_id_field_of_the_wrong_type_is_refused_not_misread(bad) -> None:
    """``ids_of("151643")`` once iterated into the IDs of the digits and ``True`` into ID 1: the markers compared the
    wrong tokens silently. Every caller (probe, special-ID alignment) now gets an InputError."""
    from cleanroom.control_tokens import ids_of
    from cleanroom.errors import InputError

    with pytest.raises(InputError, match="token ID field holds"):
        ids_of(bad)
    assert ids_of(None) == set() and ids_of(151643) == {151643} and ids_of([151643, 151645]) == {151643, 151645}

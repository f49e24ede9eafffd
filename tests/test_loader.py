"""CleanModelLoader: clean tokenizer, eos/pad, provenance, snapshot, nf4/int8 on CPU (then generating), bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from cleanroom import guard
from cleanroom.errors import ConfigError, ContaminationError
from cleanroom.generation import generate
from cleanroom.loader import CleanModelLoader


@pytest.fixture(scope="module")
def loaded(tiny_base_model):
    loader = CleanModelLoader(tiny_base_model)
    model, tok, prov = loader.load()
    return loader, model, tok, prov


def test_tokenizer_is_clean(loaded, tmp_path):
    _, _, tok, _ = loaded
    assert tok.chat_template is None
    with pytest.raises(ContaminationError, match="apply_chat_template"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])
    assert tok("Hello world")["input_ids"] == [9707, 1879]
    assert 151644 not in tok("<|im_start|>user")["input_ids"]
    assert 151657 not in tok.encode("<tool_call>")
    assert (tok.eos_token_id, tok.pad_token_id) == (151643, 151643)
    tok.save_pretrained(tmp_path)
    assert not (tmp_path / "chat_template.jinja").exists()
    assert "chat_template" not in json.loads((tmp_path / "tokenizer_config.json").read_text())


def test_model_eos_and_provenance(loaded, tiny_base_model):
    _, model, _, prov = loaded
    assert model.generation_config.eos_token_id == 151643 and model.generation_config.pad_token_id == 151643
    assert len(prov["loader_version"]) == 64 and prov["resolved_model_path"] == str(tiny_base_model.resolve())
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= set(prov["files"])
    assert prov["sentinels"]["failures"] == [] and prov["sentinels"]["reference"].startswith("tiktoken")
    assert prov["probe"]["is_instruct"] is False and prov["probe"]["p_eot"] < 1e-3
    assert prov["allow_pickle"] is False and prov["bos_required"] is False
    json.dumps(prov)


def test_sentinels_fail_on_a_dirty_qwen_tokenizer(qwen_base_tokenizer):
    """The sentinels can fail: the uncleaned tokenizer turns literal control text into control IDs."""
    from transformers import AutoTokenizer

    from cleanroom.sentinels import run_sentinels

    report = run_sentinels(AutoTokenizer.from_pretrained(str(qwen_base_tokenizer)))  # as shipped, not cleaned
    assert not report.ok and len(report.failures) >= 6, report.failures
    assert any("turns literal text into control ID(s) [151644, 151645]" in f for f in report.failures)
    assert any("literal text became control/special IDs [151657, 151658]" in f for f in report.failures)


def test_missing_bitsandbytes_names_the_path(tiny_base_model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes -> ImportError
    with pytest.raises(ConfigError, match=rf"{tiny_base_model}: quantization='nf4' is not available.*pip install"):
        CleanModelLoader(tiny_base_model, quantization="nf4").load()


def test_recheck_catches_trainer_rewriting_eos(loaded):
    _, model, tok, _ = loaded
    guard.recheck(model, tok)
    model.generation_config.eos_token_id = [151643, 151645]
    try:
        with pytest.raises(ContaminationError, match="generation_eos_token_id"):
            guard.recheck(model, tok)
    finally:
        model.generation_config.eos_token_id = 151643


@pytest.mark.parametrize(
    ("owner", "field", "value"),
    [("generation_config", "forced_eos_token_id", 151645), ("generation_config", "bos_token_id", 151644),
     ("generation_config", "begin_suppress_tokens", [151643]), ("config", "tie_word_embeddings", False)],
)
def test_recheck_compares_whole_config_and_generation_config(loaded, owner, field, value):
    _, model, tok, _ = loaded
    obj = getattr(model, owner)
    before = getattr(obj, field, None)
    setattr(obj, field, value)
    try:
        with pytest.raises(ContaminationError, match=rf"model\.whole_{owner}\.{field}: "):
            guard.recheck(model, tok)
    finally:
        setattr(obj, field, before)
    guard.recheck(model, tok)


def test_recheck_ignores_volatile_config_keys(loaded):
    """use_cache (turned off for gradient checkpointing) is documented as volatile; it is not drift."""
    _, model, tok, _ = loaded
    model.config.use_cache = not model.config.use_cache
    try:
        guard.recheck(model, tok)
    finally:
        model.config.use_cache = not model.config.use_cache


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["nf4", "int8"])
def test_quantized_load_on_cpu(tiny_base_model, quantization):
    import bitsandbytes as bnb

    loader = CleanModelLoader(tiny_base_model, quantization=quantization, probe=False)
    model, tok, prov = loader.load()
    layer = model.model.layers[0].mlp.up_proj
    assert isinstance(layer, bnb.nn.Linear4bit if quantization == "nf4" else bnb.nn.Linear8bitLt)
    assert prov["quantization"] == quantization
    assert generate(model, tok, "Hello", max_new_tokens=2).token_counts == [2]


def test_bad_input_is_config_error(tmp_path, tiny_base_model):
    with pytest.raises(ConfigError, match="does not exist"):
        CleanModelLoader(tmp_path / "nope").load()
    (tmp_path / "m").mkdir()
    shutil.copy(tiny_base_model / "config.json", tmp_path / "m")
    with pytest.raises(ConfigError, match="no tokenizer files"):
        CleanModelLoader(tmp_path / "m").load()
    with pytest.raises(ConfigError, match="allow_instruct_reason"):
        CleanModelLoader(tiny_base_model, allow_instruct=True)
    with pytest.raises(ConfigError, match="quantization"):
        CleanModelLoader(tiny_base_model, quantization="fp4")


@pytest.mark.slow
def test_pickle_refused_and_vocab_mismatch(tmp_path, tiny_base_model):
    from transformers import AutoConfig

    pick = tmp_path / "pick"
    shutil.copytree(tiny_base_model, pick)
    (pick / "model.safetensors").rename(pick / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="allow_pickle"):
        CleanModelLoader(pick).load()
    small = tmp_path / "small"
    shutil.copytree(tiny_base_model, small, ignore=shutil.ignore_patterns("model.safetensors"))
    from transformers import Qwen2ForCausalLM

    cfg = AutoConfig.from_pretrained(small)
    cfg.vocab_size = 1000
    Qwen2ForCausalLM(cfg).save_pretrained(small)
    with pytest.raises(ConfigError, match="embedding has 1000 rows"):
        CleanModelLoader(small, probe=False).load()


def test_truncated_safetensors_is_config_error_naming_the_file(tmp_path, tiny_base_model):
    bad = tmp_path / "truncated"
    shutil.copytree(tiny_base_model, bad)
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ConfigError, match=r"model\.safetensors.*could not be read"):
        CleanModelLoader(bad, probe=False).load()


@pytest.mark.slow
def test_tokenizer_far_smaller_than_embedding_is_refused(tmp_path, tiny_base_model):
    """151,665 tokens against 151,936 + 2,000 rows: a gap of 2,271 > 1,024 means another model's tokenizer."""
    from transformers import AutoConfig, Qwen2ForCausalLM

    big = tmp_path / "big"
    shutil.copytree(tiny_base_model, big, ignore=shutil.ignore_patterns("model.safetensors"))
    cfg = AutoConfig.from_pretrained(big)
    cfg.vocab_size += 2000
    Qwen2ForCausalLM(cfg).save_pretrained(big)
    with pytest.raises(ConfigError, match=rf"{big}: tokenizer has 151665 tokens but the embedding has 153936 rows"):
        CleanModelLoader(big, probe=False).load()


@pytest.mark.gpu
def test_nf4_on_cuda_random_qwen2(tmp_path, qwen_base_tokenizer):
    """nf4 load + sentinels + base decision on CUDA with a random Qwen2 architecture (the deployment gate)."""
    import torch
    from transformers import Qwen2ForCausalLM

    from cleanroom.fixtures import tiny_qwen2_config

    Qwen2ForCausalLM(tiny_qwen2_config(hidden_size=256, intermediate_size=512)).to(torch.bfloat16).save_pretrained(tmp_path)
    for f in qwen_base_tokenizer.iterdir():
        if f.is_file() and not f.name.startswith("."):
            shutil.copy(f, tmp_path)
    loader = CleanModelLoader(tmp_path, quantization="nf4", device_map={"": 0})
    model, tok, prov = loader.load()
    assert next(model.parameters()).is_cuda and prov["probe"]["is_instruct"] is False
    assert prov["sentinels"]["failures"] == []
    assert generate(model, tok, ["Hello", "a b c"], max_new_tokens=3).token_counts == [3, 3]


@pytest.fixture(scope="module")
def llama_style_model(tmp_path_factory):
    """A byte-level BPE tokenizer whose tokenizer.json post-processor adds ``<s>`` (as Llama's does) and a
    tiny random LlamaForCausalLM of the same vocabulary, saved as safetensors."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-llama-base")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>", *sorted(alphabet)])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.save_pretrained(out)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                      bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


def test_llama_style_tokenizer_loads_with_explicit_bos(llama_style_model):
    """The shipped tokenizer adds <s> through its post-processor while add_bos_token reads False; the loader
    turns it off, marks BOS as required, and guard.encode / generate put exactly one BOS at position 0."""
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(str(llama_style_model))
    assert raw("hi")["input_ids"][0] == 1  # the defect's precondition: BOS added as shipped
    loader = CleanModelLoader(llama_style_model)
    model, tok, prov = loader.load()
    assert prov["bos_required"] is True and prov["bos_id"] == 1 and prov["sentinels"]["failures"] == []
    plain = tok("hi there")["input_ids"]
    assert 1 not in plain
    ids = guard.encode(tok, "hi there")
    assert ids == [1, *plain]
    forbidden = guard.forbidden_ids(tok)
    guard.scan_ids([ids], forbidden, tokenizer=tok)
    with pytest.raises(ContaminationError, match="token 1 is ID 1 .*BOS 1 is allowed once"):
        guard.scan_ids([[1, *ids]], forbidden, tokenizer=tok)
    with pytest.raises(ContaminationError, match=f"token {len(ids)} is ID 1"):
        guard.scan_ids([[*ids, 1]], forbidden, tokenizer=tok)
    out = guard.render_example(tok, "Q:", " a", max_length=32)
    assert out["input_ids"][0] == 1 and out["input_ids"].count(1) == 1 and out["labels"][0] == -100
    assert generate(model, tok, ["hi", "a b"], max_new_tokens=2).token_counts == [2, 2]
    guard.recheck(model, tok)


def test_loader_version_covers_every_model_safety_and_model_use_module_the_loader_runs():
    """``loader_version`` pins what decides a load's result: the loader and, through its imports (followed
    transitively), every module of layers 2-3 (model safety, model use) it runs. A module dropped from
    ``_SOURCES``, or a new one the loader starts to import, fails here; an edit to any of them changes it."""
    import ast
    import hashlib
    import sys
    from pathlib import Path

    from cleanroom import loader

    sys.path.insert(0, str(Path(__file__).parent))
    from test_architecture import layer_of

    src = Path(loader.__file__).parent
    seen, todo = set(), ["loader"]
    while todo:
        name = todo.pop()
        seen.add(name)
        for node in ast.walk(ast.parse((src / f"{name}.py").read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.ImportFrom) and node.module == "cleanroom":
                mods = [f"cleanroom.{a.name}" for a in node.names]
            for m in mods:
                short = m.removeprefix("cleanroom.")
                if m.startswith("cleanroom.") and "." not in short and layer_of(m) in (2, 3) and short not in seen:
                    todo.append(short)
    assert {f"{n}.py" for n in seen} == set(loader._SOURCES)
    parts = [hashlib.sha256((src / name).read_bytes()).digest() for name in loader._SOURCES]
    assert loader.loader_version() == hashlib.sha256(b"".join(parts)).hexdigest()

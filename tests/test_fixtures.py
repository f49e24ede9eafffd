"""The offline fixtures reproduce real Qwen2.5 IDs, build deterministically and load a real GGUF."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cleanroom import fixtures


@pytest.fixture(scope="module")
def qwen_tok(qwen_base_tokenizer: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_base_tokenizer)


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("Hello world", [9707, 1879]),
        ("user", [872]),
        ("<|im_start|>", [151644]),  # the raw tokenizer (not yet cleaned) maps the literal to the control ID
        ("<|endoftext|>", [151643]),
        ("12", [16, 17]),  # Qwen2 splits digits one by one
    ],
)
def test_known_qwen25_encodings(qwen_tok, text: str, ids: list[int]) -> None:
    assert qwen_tok(text, add_special_tokens=False)["input_ids"] == ids


def test_full_set_of_qwen25_added_tokens(qwen_tok) -> None:
    decoder = qwen_tok.added_tokens_decoder
    assert sorted(decoder) == list(range(151643, 151665))
    for token_id, content, special in fixtures.QWEN25_ADDED_TOKENS:
        assert decoder[token_id].content == content
        assert decoder[token_id].special is special
    assert len(qwen_tok) == 151665


def test_tokenizer_keeps_the_base_repository_trap(qwen_base_tokenizer: Path, qwen_tok) -> None:
    """Like Qwen/Qwen2.5-32B: a ChatML template ships, EOS and pad are <|endoftext|>, no BOS."""
    assert "<|im_start|>" in qwen_tok.chat_template
    assert qwen_tok.eos_token == "<|endoftext|>" and qwen_tok.eos_token_id == 151643
    assert qwen_tok.pad_token_id == 151643
    assert qwen_tok.bos_token is None
    assert "chat_template" in (qwen_base_tokenizer / "tokenizer_config.json").read_text()


def test_tokenizer_matches_tiktoken_reference(qwen_tok) -> None:
    """Independent check: tiktoken over the same ranks and pattern gives the same IDs."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    enc = tiktoken.Encoding(
        name="qwen-ref",
        pat_str=fixtures.QWEN_PAT_STR,
        mergeable_ranks=load_tiktoken_bpe(str(fixtures._qwen_tiktoken_file())),
        special_tokens={},
    )
    texts = ["The quick brown fox.", "  indented\n\ncode()", "naïve café — 東京 🚀", "x=1234567;"]
    for text in texts:
        assert qwen_tok(text, add_special_tokens=False)["input_ids"] == enc.encode_ordinary(text)


def _digest_dir(path: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.slow
def test_tiny_base_build_is_deterministic_byte_for_byte(tmp_path: Path, tiny_base_model: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    fixtures.build_tiny_base_model(a, seed=fixtures.TINY_SEED)
    fixtures.build_tiny_base_model(b, seed=fixtures.TINY_SEED)
    assert _digest_dir(a) == _digest_dir(b) == _digest_dir(tiny_base_model)
    c = tmp_path / "c"
    fixtures.build_tiny_base_model(c, seed=fixtures.TINY_SEED + 1)
    assert _digest_dir(c)["model.safetensors"] != _digest_dir(a)["model.safetensors"]


def test_tiny_base_is_a_two_layer_qwen2(tiny_base_model: Path) -> None:
    import json

    config = json.loads((tiny_base_model / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (2, 64, 151936)
    assert (tiny_base_model / "model.safetensors").is_file()
    assert not list(tiny_base_model.glob("*.bin")), "weights must be safetensors, never pickle"


@pytest.mark.slow
def test_smollm2_gguf_loads_with_transformers(smollm2_instruct: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (gguf,) = list(smollm2_instruct.glob("*.gguf"))
    tok = AutoTokenizer.from_pretrained(smollm2_instruct, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(smollm2_instruct, gguf_file=gguf.name)
    assert model.config.model_type == "llama"
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape[-1] == model.config.vocab_size
    assert torch.isfinite(logits).all()
    # A real instruct model: its tokenizer carries a chat template with an end-of-turn token.
    assert "<|im_end|>" in (tok.chat_template or "")

"""check_saved_tokenizer: the tokenizer saved beside an adapter is the clean one, or training fails closed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanroom.errors import ContaminationError
from cleanroom.training import train_sft
from cleanroom.training.saved_tokenizer import check_saved_tokenizer


def _edit_config(directory: Path, **changes) -> None:
    path = directory / "tokenizer_config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_clean_save_passes_and_each_rewrite_is_caught(load_tiny, tmp_path):
    _, tok = load_tiny()
    clean = tmp_path / "clean"
    tok.save_pretrained(clean)
    check_saved_tokenizer(clean, tok)  # the clean tokenizer round-trips
    check_saved_tokenizer(tmp_path / "empty-dir-without-tokenizer", tok)  # nothing saved: nothing to load

    pad = tmp_path / "pad"
    tok.save_pretrained(pad)
    _edit_config(pad, pad_token="<|vision_pad|>")  # what Unsloth does to a Qwen2.5 base at load
    with pytest.raises(ContaminationError, match=r"pad.*differs from the clean tokenizer.*pad_token_id"):
        check_saved_tokenizer(pad, tok)

    template = tmp_path / "template"
    tok.save_pretrained(template)
    _edit_config(template, chat_template="{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}")
    with pytest.raises(ContaminationError, match="chat_template"):
        check_saved_tokenizer(template, tok)

    eos = tmp_path / "eos"
    tok.save_pretrained(eos)
    _edit_config(eos, eos_token="<|im_end|>")  # a chat-model EOS slipped into a base model's files
    with pytest.raises(ContaminationError, match="eos_token_id"):
        check_saved_tokenizer(eos, tok)


@pytest.mark.slow
def test_training_fails_closed_when_the_save_rewrites_the_tokenizer(load_tiny, learnable, lora, spec, tmp_path,
                                                                    monkeypatch):
    model, tok = load_tiny()
    real_save = tok.save_pretrained

    def rewriting_save(directory, *args, **kwargs):  # a backend that rewrites the tokenizer files on save
        out = real_save(directory, *args, **kwargs)
        _edit_config(Path(directory), pad_token="<|vision_pad|>")
        return out

    monkeypatch.setattr(tok, "save_pretrained", rewriting_save)
    with pytest.raises(ContaminationError, match=r"adapter: the tokenizer saved beside the adapter differs"):
        train_sft(model, tok, learnable, lora=lora, train=spec(max_steps=2, save_steps=10), output_dir=tmp_path / "sft")

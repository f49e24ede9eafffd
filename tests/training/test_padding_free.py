"""Padding-free SFT: the packed row gives the padded batch's loss (attention stays per example), and train_sft matches."""

from __future__ import annotations

import pytest
import torch

from cleanroom.training import train_sft
from cleanroom.training.collate import GuardedLanguageModelingCollator

pytestmark = pytest.mark.slow

def _loss(model, batch):
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids", "labels")}
    with torch.no_grad():
        return float(model(**inputs, use_cache=False).loss)  # with a KV cache, transformers skips packed detection


def test_packed_row_gives_the_padded_loss_and_a_plain_causal_row_does_not(varied, load_tiny):
    """Same tokens, same labels: the mean NLL over supervised tokens must agree (fp32, SDPA) within 1e-5.

    Without position IDs the packed row is one causal sequence (example 2 attends to example 1), and its
    loss differs — which is what this test would see if transformers ignored the restarts.
    """
    from cleanroom.training.sft import render_examples

    model, tok = load_tiny()
    model.eval()
    rows = render_examples(tok, varied, max_length=64, name="t")
    padded = GuardedLanguageModelingCollator(tok)(rows)
    packed = GuardedLanguageModelingCollator(tok, padding_free=True)(rows)
    assert padded["attention_mask"].sum() == packed["input_ids"].shape[1] < padded["input_ids"].numel()
    assert _loss(model, packed) == pytest.approx(_loss(model, padded), abs=1e-5)
    cross = {k: v for k, v in packed.items() if k != "position_ids"}
    assert abs(_loss(model, cross) - _loss(model, padded)) > 1e-3
    # With a KV cache (use_cache defaults to True) transformers 5.x skips the packed-sequence mask: examples mix.
    inputs = {k: v for k, v in packed.items() if k in ("input_ids", "position_ids", "labels")}
    with torch.no_grad():
        assert abs(float(model(**inputs, use_cache=True).loss) - _loss(model, padded)) > 1e-3


def test_train_sft_padding_free_follows_the_padded_loss_curve(varied, load_tiny, lora, spec, tmp_path):
    """Four steps of batch 2 on varied lengths: the per-step losses agree within 1e-4 (fp32 on the CPU)."""
    curves = []
    for padding_free in (False, True):
        model, tok = load_tiny()
        res = train_sft(model, tok, varied * 2, lora=lora, train=spec(padding_free=padding_free, save_steps=100),
                        output_dir=tmp_path / str(padding_free))
        assert res.steps == 4
        curves.append(res.losses)
    assert curves[1] == pytest.approx(curves[0], abs=1e-4)


def test_dpo_refuses_padding_free(load_tiny, lora, spec, tmp_path):
    from cleanroom.errors import ConfigError
    from cleanroom.training import train_dpo

    model, tok = load_tiny()
    pairs = [{"prompt": "Q: yes?\nA:", "chosen": " yes", "rejected": " no"}]
    with pytest.raises(ConfigError, match="padding_free is not supported for DPO"):
        train_dpo(model, tok, pairs, lora=lora, train=spec(padding_free=True), beta=0.1, output_dir=tmp_path)

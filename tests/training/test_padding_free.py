"""Padding-free SFT: the packed row gives the padded batch's loss (attention stays per example), and train_sft matches."""

from __future__ import annotations

import math

import pytest
import torch

from cleanroom.training import train_dpo, train_sft
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


PAIRS = [{"prompt": "Say yes:", "chosen": " yes", "rejected": " no, never"},
         {"prompt": "Q: the colour of the sky?\nA:", "chosen": " blue, mostly, in the day", "rejected": " green"}] * 2


def _fused_log_probs(model, batch):
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                     fused_lm_head=True).log_probs


def test_packed_dpo_forward_gives_the_padded_log_probs_and_a_leaking_one_does_not(load_tiny):
    """TRL's fused LM head on a guarded preference batch (chosen rows, then rejected rows, right-padded): the packed
    forward returns the padded forward's per-token log-probs, in the padded layout, within 1e-5 (fp32, SDPA). With
    positions that do not restart per row, a row attends to the rows before it and the log-probs move (compare()'s
    leak control). A fused call that cannot be packed is refused, not run padded."""
    from trl.trainer.utils import add_fused_lm_head

    from cleanroom.errors import GateError
    from cleanroom.training import packed_forward
    from cleanroom.training.collate import GuardedPreferenceCollator
    from cleanroom.training.dpo import render_pairs

    model, tok = load_tiny()
    model.eval()
    add_fused_lm_head(model)
    batch = GuardedPreferenceCollator(tok)(render_pairs(tok, PAIRS[:2], max_length=64))
    assert bool((batch["attention_mask"] == 0).any())  # there is padding to skip
    padded = _fused_log_probs(model, batch)
    packed_forward.install(model)
    packed = _fused_log_probs(model, batch)
    assert packed_forward.counts(model) == (1, 0) and packed.shape == padded.shape
    assert torch.allclose(packed, padded, atol=1e-5) and bool((padded != 0).any())
    gaps = packed_forward.compare(model, batch)
    assert gaps["packed_vs_padded"]["max"] < 1e-3 < gaps["leak_vs_padded"]["mean"]
    with pytest.raises(GateError, match="cannot be packed"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["input_ids"],
              position_ids=torch.zeros_like(batch["input_ids"]), fused_lm_head=True)


def test_pack_refuses_a_row_whose_real_tokens_are_not_contiguous():
    from cleanroom.errors import GateError
    from cleanroom.training.packed_forward import pack

    ids = torch.arange(8).view(2, 4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 0]])
    with pytest.raises(GateError, match="row 1 of the batch has 2 runs"):
        pack(ids, mask, ids)
    with pytest.raises(GateError, match="row 0 of the batch has 0 runs"):
        pack(ids, torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0]]), ids)


def test_train_dpo_padding_free_follows_the_padded_loss_curve(load_tiny, lora, spec, tmp_path):
    """Two steps of 4 pairs, padded, packed, and packed with the reference precomputed: step 0 is still ln 2 with
    a zero margin, the losses agree with the padded run's within 1e-5 (fp32 on the CPU), and every policy and
    reference forward ran packed (the record says how many)."""
    runs = {}
    for padding_free, precompute in ((False, False), (True, False), (True, True)):
        model, tok = load_tiny()
        runs[padding_free, precompute] = train_dpo(
            model, tok, PAIRS, lora=lora, beta=0.1, output_dir=tmp_path / f"{padding_free}-{precompute}",
            train=spec(max_steps=2, save_steps=2, learning_rate=2e-2, batch_size=4, padding_free=padding_free,
                       precompute_ref_log_probs=precompute))
    padded = runs[False, False]
    assert padded.losses[-1] < math.log(2) - 1e-3  # it trained
    assert "packed_forwards" not in padded.levers["padding_free"]
    # step 0 and 2 steps, each a policy forward, plus a reference forward each (live) or one precompute batch
    for precompute, forwards in ((False, 3 * 2), (True, 3 + 1)):
        packed = runs[True, precompute]
        assert packed.step0_loss == pytest.approx(math.log(2), abs=1e-6) and abs(packed.step0_margin) < 1e-6
        assert packed.losses == pytest.approx(padded.losses, abs=1e-5)
        assert packed.levers["padding_free"] == {**packed.levers["padding_free"], "on": True,
                                                 "packed_forwards": forwards}
    # DPO again on the trained model (its adapter now trained in place): the new trainer's fused head wraps over the
    # old packing, which is wrapped again and counted afresh (a stale count would say 6 and nothing packed)
    again = train_dpo(runs[True, False].model, tok, PAIRS, lora=lora, beta=0.1, output_dir=tmp_path / "again",
                      train=spec(max_steps=1, save_steps=1, batch_size=4, padding_free=True))
    assert again.levers["padding_free"]["packed_forwards"] == 2 * 2


def test_train_dpo_padding_free_fails_when_no_forward_ran_packed(load_tiny, lora, spec, tmp_path, monkeypatch):
    """A backend whose DPO forward bypasses TRL's fused LM head never packs: the run stops after the step-0
    measurement, before any step, instead of recording the lever as on."""
    from cleanroom.errors import GateError
    from cleanroom.training import packed_forward

    monkeypatch.setattr(packed_forward, "install", lambda model: None)
    model, tok = load_tiny()
    with pytest.raises(GateError, match="no forward ran packed in the step-0 measurement"):
        train_dpo(model, tok, PAIRS, lora=lora, train=spec(padding_free=True), beta=0.1, output_dir=tmp_path)
    assert not (tmp_path / "adapter").exists()


def test_train_dpo_padding_free_fails_at_the_first_training_step_that_does_not_pack(load_tiny, lora, spec, tmp_path):
    """A forward that passes for the packing one but runs padded once training begins (as a backend swapping the
    forward after the step-0 measurement would): the first training step is a GateError, before any checkpoint."""
    import types

    from transformers import TrainerCallback

    from cleanroom.errors import GateError
    from cleanroom.training import packed_forward

    class Bypass(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            base = kw["model"].get_base_model()
            inner = getattr(base, packed_forward.INNER_ATTR)

            def forward(self, *a, **k):
                return inner(*a, **k)

            forward.cleanroom_packs = True
            base.forward = types.MethodType(forward, base)

    model, tok = load_tiny()
    with pytest.raises(GateError, match="no forward ran packed in a training step"):
        train_dpo(model, tok, PAIRS, lora=lora, beta=0.1, output_dir=tmp_path, callbacks=[Bypass()],
                  train=spec(padding_free=True, save_steps=1))
    assert not list(tmp_path.glob("checkpoint-*"))

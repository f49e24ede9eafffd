"""train_sft: loss falls on a learnable batch, only LoRA changes, adapter-only checkpoints, resume, guards, budget."""

from __future__ import annotations

import shutil

import pytest
import torch

from cleanroom.errors import ContaminationError
from cleanroom.training import train_sft

pytestmark = pytest.mark.slow


def _state(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_sft_learns_changes_only_lora_and_checkpoints_adapters_then_resumes(load_tiny, learnable, lora, spec, tmp_path):
    model, tok = load_tiny()
    before = _state(model)
    out = tmp_path / "sft"
    res = train_sft(model, tok, learnable, lora=lora, train=spec(max_steps=6, save_steps=3, learning_rate=3e-2), output_dir=out)

    # The loss on one repeated example falls: final/initial <= 0.95 (measured at lr 3e-2, 6 steps).
    assert res.steps == 6 and len(res.losses) == 6 and res.loss_steps == (1, 2, 3, 4, 5, 6)
    assert all(torch.isfinite(torch.tensor(res.losses)))
    assert res.losses[-1] / res.losses[0] <= 0.95, res.losses
    assert res.tokens > 0 and res.tokens_per_s > 0 and res.peak_mem_bytes > 0

    # Only LoRA parameters moved; every base weight is bit-identical.
    after = {k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in _state(res.model).items()}
    lora_names = [k for k in after if "lora_" in k]
    assert lora_names and all(k.split(".")[-2] in {"default"} for k in lora_names)
    for name, value in before.items():
        assert torch.equal(after[name], value), f"base parameter {name} changed"
    assert any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in lora_names if "lora_B" in k)

    # Checkpoints and the final save hold the adapter only.
    for d in (out / "checkpoint-3", out / "checkpoint-6", res.adapter_dir):
        names = {p.name for p in d.iterdir()}
        assert "adapter_model.safetensors" in names, names
        assert not names & {"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"}, names
    assert (out / "checkpoint-3" / "optimizer.pt").is_file()

    # Kill after step 3 (drop the later checkpoint), resume on a fresh model: steps 4-6 reproduce within 1e-3.
    shutil.rmtree(out / "checkpoint-6")
    shutil.rmtree(res.adapter_dir)
    model2, tok2 = load_tiny()
    res2 = train_sft(model2, tok2, learnable, lora=lora, train=spec(max_steps=6, save_steps=3, learning_rate=3e-2), output_dir=out,
                     resume=True)
    assert res2.resumed_from is not None and res2.resumed_from.endswith("checkpoint-3")
    assert res2.loss_steps[-3:] == (4, 5, 6)
    assert res2.losses[-3:] == pytest.approx(res.losses[-3:], abs=1e-3)


def test_trainer_rewriting_eos_is_caught_by_recheck(load_tiny, learnable, lora, spec, tmp_path):
    # TRL's `eos_token` option rewrites the tokenizer's EOS and the model configs at trainer init.
    model, tok = load_tiny()
    with pytest.raises(ContaminationError, match="eos_token_id"):
        train_sft(model, tok, learnable, lora=lora, train=spec(trl_overrides={"eos_token": "<|im_end|>"}),
                  output_dir=tmp_path / "sft")
    assert not (tmp_path / "sft" / "checkpoint-2").exists()  # caught before any step


def test_example_whose_eos_would_be_truncated_is_refused(load_tiny, lora, spec, tmp_path):
    model, tok = load_tiny()
    with pytest.raises(ContaminationError, match="max_length=32"):
        train_sft(model, tok, [{"prompt": "Q:", "completion": " a" * 100}], lora=lora, train=spec(max_length=32),
                  output_dir=tmp_path / "sft")


def test_budget_stops_at_a_checkpoint(load_tiny, learnable, lora, spec, tmp_path):
    model, tok = load_tiny()
    calls = []

    def budget():
        calls.append(1)
        return "max_cost_usd 0.01 reached" if len(calls) >= 2 else None

    res = train_sft(model, tok, learnable, lora=lora, train=spec(max_steps=6, save_steps=100), output_dir=tmp_path,
                    budget=budget)
    assert res.steps == 2
    assert res.stopped_reason == "budget exhausted at step 2: max_cost_usd 0.01 reached"
    assert (tmp_path / "checkpoint-2" / "adapter_model.safetensors").is_file()


def test_early_stopping_on_eval_plateau(load_tiny, learnable, lora, spec, tmp_path):
    model, tok = load_tiny()
    # lr 1e-7 cannot move the eval loss by the 0.5 threshold: the 2nd evaluation is a plateau, patience 1 stops.
    res = train_sft(model, tok, learnable, lora=lora, eval_examples=learnable[:2], output_dir=tmp_path,
                    train=spec(max_steps=8, save_steps=1, learning_rate=1e-7, early_stopping_patience=1,
                               early_stopping_threshold=0.5))
    assert res.steps == 2 and len(res.eval_losses) == 2


def test_eval_loss_is_the_token_mean_of_the_eval_set_whatever_the_batches(load_tiny, lora, spec, tmp_path):
    """The SFT eval loss is sum(token losses) / tokens over the whole eval set, so the eval batch size (and on
    N ranks the split of rows) does not change it. The Trainer's own loop averaged per-batch means: with rows of
    different lengths, batch 1 and batch 4 then disagree (as 2 gloo ranks and one process did, 11.898 vs 11.916)."""
    import torch

    from cleanroom.training.sft import _sft_trainer, render_examples

    model, tok = load_tiny()
    examples = [{"prompt": f"Q{i}: colour?\nA:", "completion": " red" * (1 + 7 * (i % 2))} for i in range(6)]
    rows = render_examples(tok, examples, max_length=64, name="eval")
    figures = {}
    for batch in (1, 4):
        trainer = _sft_trainer(model, tok, rows, rows, lora=lora, train=spec(batch_size=batch, max_steps=1),
                               output_dir=tmp_path / str(batch), callbacks=[])
        figures[batch] = trainer.evaluate()["eval_loss"]
        peft_model = trainer.model
        model = peft_model.unload()  # the same base, unchanged, for the next trainer
    # the same figure by hand: every row alone, token losses summed over the supervised (shifted) positions
    total = count = 0.0
    with torch.no_grad():
        for r in rows:
            ids = torch.tensor([r["input_ids"]])
            labels = torch.tensor([r["labels"]])
            logits = model(input_ids=ids).logits[0, :-1].float()
            target = labels[0, 1:]
            keep = target != -100
            total += float(torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum"))
            count += int(keep.sum())
    assert figures[1] == pytest.approx(total / count, rel=1e-5)
    assert figures[4] == pytest.approx(total / count, rel=1e-5)

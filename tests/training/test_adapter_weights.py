"""load_adapter_weights: a saved adapter copied into a freshly attached one (how DPO on Unsloth starts from the SFT
policy), proven tensor by tensor; a differently shaped, incomplete or lossy load is refused."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cleanroom.errors import ConfigError, InputError, MissingFileError
from cleanroom.training import LoraSpec, TrainSpec, train_dpo
from cleanroom.training.adapter_weights import load_adapter_weights


def _saved_adapter(load_tiny, lora: LoraSpec, out: Path) -> Path:
    """A trained-looking adapter (B random, not the zero it starts as) saved under ``out``."""
    from peft import get_peft_model

    model, _ = load_tiny()
    peft_model = get_peft_model(model, lora.to_peft())
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    peft_model.save_pretrained(str(out))
    return out


def _attached(load_tiny, lora: LoraSpec):
    from peft import get_peft_model

    model, tok = load_tiny()
    return get_peft_model(model, lora.to_peft()), tok


def _logits(model, tok) -> torch.Tensor:
    ids = torch.tensor([tok("the cat sat on the mat")["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_loaded_adapter_computes_what_peft_from_pretrained_computes(load_tiny, lora, tmp_path):
    from peft import PeftModel

    saved = _saved_adapter(load_tiny, lora, tmp_path / "sft")
    fresh, tok = _attached(load_tiny, lora)
    before = _logits(fresh, tok)
    n = load_adapter_weights(fresh, saved)
    base, _ = load_tiny()
    reference = PeftModel.from_pretrained(base, str(saved))
    assert n == len([k for k in fresh.state_dict() if "lora_" in k])
    assert torch.equal(_logits(fresh, tok), _logits(reference, tok))
    assert not torch.equal(before, _logits(fresh, tok))  # the saved B is not zero: the load changed the function


@pytest.mark.parametrize("padding_free", [False, True])
def test_dpo_from_a_loaded_adapter_starts_at_ln2_and_trains_it_in_place(load_tiny, lora, tmp_path, padding_free):
    """The Unsloth DPO start on a CPU: the SFT adapter loaded into the attached one is the policy, TRL's frozen
    copy of it the reference; step 0 is ln 2 and the trained adapter moves away from the SFT one. Padding-free,
    the policy and the ``ref`` adapter's forwards both run packed."""
    saved = _saved_adapter(load_tiny, lora, tmp_path / "sft")
    model, tok = _attached(load_tiny, lora)
    load_adapter_weights(model, saved)
    sft_state = {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k and ".default." in k}
    pairs = [{"prompt": f"Question {i}: yes or no?\nAnswer:", "chosen": " yes", "rejected": " no"} for i in range(4)]
    spec = TrainSpec(max_steps=2, batch_size=2, max_length=64, learning_rate=1e-2, save_steps=10**6, precision="fp32",
                     padding_free=padding_free)
    res = train_dpo(model, tok, pairs, lora=lora, train=spec, beta=0.1, output_dir=tmp_path / "dpo")
    assert math.isclose(res.step0_loss, math.log(2), abs_tol=1e-5) and abs(res.step0_margin) < 1e-5
    assert res.levers["padding_free"].get("packed_forwards") == (6 if padding_free else None)  # (step 0 + 2) x 2
    after = {k: v for k, v in res.model.state_dict().items() if k in sft_state}
    assert any(not torch.equal(after[k], sft_state[k]) for k in sft_state)


def test_a_differently_shaped_adapter_is_refused(load_tiny, lora, tmp_path):
    saved = _saved_adapter(load_tiny, lora, tmp_path / "sft")
    other, _ = _attached(load_tiny, LoraSpec(r=4, alpha=16))
    with pytest.raises(ConfigError, match=r"adapter_config.json: the saved adapter is not shaped like the attached one "
                                          r"\(r: saved 8, attached 4\)"):
        load_adapter_weights(other, saved)


def test_missing_files_and_tensors_are_refused(load_tiny, lora, tmp_path):
    from safetensors.torch import load_file, save_file

    fresh, _ = _attached(load_tiny, lora)
    with pytest.raises(MissingFileError, match="adapter_config.json does not exist"):
        load_adapter_weights(fresh, tmp_path / "nowhere")
    saved = _saved_adapter(load_tiny, lora, tmp_path / "sft")
    weights = saved / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    dropped = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != dropped}, str(weights))
    with pytest.raises(InputError, match=r"1 missing, e.g. \['" + dropped.replace(".", r"\.")):
        load_adapter_weights(fresh, saved)
    with pytest.raises(ConfigError, match="no attached adapter 'other'"):
        load_adapter_weights(fresh, saved, adapter_name="other")


def test_a_lossy_load_is_refused(load_tiny, lora, tmp_path):
    """fp32 values that a bf16 adapter cannot hold did not land unchanged: refused, not rounded silently."""
    saved = _saved_adapter(load_tiny, lora, tmp_path / "sft")
    fresh, _ = _attached(load_tiny, lora)
    fresh.to(torch.bfloat16)
    with pytest.raises(InputError, match="did not land in the attached adapter unchanged"):
        load_adapter_weights(fresh, saved)


def test_a_diverged_adapter_is_refused(load_tiny, lora, tmp_path):
    from safetensors.torch import load_file, save_file

    saved = _saved_adapter(load_tiny, lora, tmp_path / "sft")
    weights = saved / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    first = sorted(tensors)[0]
    tensors[first][0, 0] = float("nan")
    save_file(tensors, str(weights))
    fresh, _ = _attached(load_tiny, lora)
    with pytest.raises(InputError, match="1 tensors hold NaN or inf"):
        load_adapter_weights(fresh, saved)


def test_the_frozen_reference_is_checked(load_tiny, lora, tmp_path):
    """train_dpo's check on a model that trains its attached adapter in place: TRL's 'ref' copy must exist, be frozen
    and equal the adapter; without it (or with a different one) the reference is not the starting policy."""
    from cleanroom.errors import GateError
    from cleanroom.training.dpo import check_frozen_reference

    model, _ = _attached(load_tiny, lora)
    with pytest.raises(GateError, match="made no frozen 'ref' copy"):
        check_frozen_reference(model)
    model.add_adapter("ref", model.peft_config["default"])
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            if ".default." in name and "lora_" in name:
                params[name.replace(".default.", ".ref.")].copy_(p)
    check_frozen_reference(model)  # a frozen copy: passes
    ref_b = next(n for n in params if ".ref." in n and "lora_B" in n)
    with torch.no_grad():
        params[ref_b].add_(1.0)
    with pytest.raises(GateError, match=r"1 of \d+ LoRA tensors missing, trainable or different"):
        check_frozen_reference(model)


def test_a_resume_must_continue_the_same_adapter_on_the_same_backend(tmp_path):
    """step0.json records what the checkpoints are of; a resume that would train another setup is refused, naming
    the backend to set or the directory to delete. A step0.json from before the setup was recorded means peft."""
    import json

    from cleanroom.training.dpo import _step0

    peft_fresh, unsloth_in_place = {"backend": "peft", "in_place": False}, {"backend": "unsloth", "in_place": True}
    step0 = tmp_path / "step0.json"
    step0.write_text(json.dumps({"loss": 0.6931, "margin": 0.0, "atol": 1e-3, **peft_fresh}))
    assert _step0(None, tmp_path, "checkpoint-3", 1e-3, peft_fresh) == (0.6931, 0.0)
    with pytest.raises(ConfigError, match=r"checkpoints are of a fresh adapter over the merged model on peft but this "
                                          r"run would train the attached adapter trained in place on unsloth; set the "
                                          r"backend it ran with \(backend=peft\)"):
        _step0(None, tmp_path, "checkpoint-3", 1e-3, unsloth_in_place)
    step0.write_text(json.dumps({"loss": 0.6931, "margin": 0.0, "atol": 1e-3}))  # an older run: DPO was on peft
    assert _step0(None, tmp_path, "checkpoint-3", 1e-3, {"backend": "peft", "in_place": True}) == (0.6931, 0.0)
    with pytest.raises(ConfigError, match="on unsloth"):
        _step0(None, tmp_path, "checkpoint-3", 1e-3, unsloth_in_place)

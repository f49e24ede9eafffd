"""The eval loads the adapter stack the DPO stage recorded as its policy: on an nf4 base it is the trained DPO policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from cleanroom.errors import ConfigError

pytestmark = pytest.mark.slow

PAIRS = [{"prompt": "Say yes:", "chosen": " yes", "rejected": " no, never"}] * 4


def make_ctx(tmp_path: Path, *overrides: str) -> Any:
    """A run context for the tiny profile with *overrides*, its run directory under *tmp_path*."""
    from cleanroom.artifacts import RunDir
    from cleanroom.config import load_config, spec_to_dict
    from cleanroom.pipeline.common import BudgetMeter, Context

    spec = load_config("tiny", list(overrides))
    run = RunDir.create(tmp_path, "t", spec_to_dict(spec))
    return Context(spec=spec, run=run, device="cpu", budget=BudgetMeter(0.0), progress=False)


def fake_sft_and_pairs(ctx: Any, tmp_path: Path) -> None:
    """Finished ``sft`` (a LoRA with B != 0, so SFT differs from base) and ``pairs`` stages."""
    from peft import LoraConfig, get_peft_model

    from cleanroom.pipeline.common import capture, load_model

    model, _, _ = load_model(ctx, probe=False)
    torch.manual_seed(0)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(model, cfg).save_pretrained(tmp_path / "sft-adapter")
    with ctx.run.stage("sft", provenance=capture(ctx, "sft")) as st:
        st.add_file(tmp_path / "sft-adapter", name="adapter")
    with ctx.run.stage("pairs", provenance=capture(ctx, "pairs")) as st:
        out = st.jsonl("pairs.jsonl")
        for i, p in enumerate(PAIRS):
            out.write(dict(p, key=i), parents=[], record_id=f"pairs/pair:{i}")


def logits(model: Any, tokenizer: Any) -> torch.Tensor:
    ids = tokenizer("The cat sat on the mat.", return_tensors="pt")["input_ids"]
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_eval_loads_the_trained_dpo_policy_on_an_nf4_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cleanroom.training
    from cleanroom.pipeline.common import load_model
    from cleanroom.pipeline.evaluation import dpo_policy
    from cleanroom.pipeline.training import run_dpo

    ctx = make_ctx(tmp_path, "model.quantization=nf4", "model.dtype=auto", "dpo.train.max_steps=3",
                   "dpo.train.save_steps=3", "dpo.train.learning_rate=0.05", "dpo.train.batch_size=2")
    fake_sft_and_pairs(ctx, tmp_path)
    trained: dict[str, Any] = {}
    real = cleanroom.training.train_dpo

    def keep(*args: Any, **kwargs: Any) -> Any:
        trained["result"] = real(*args, **kwargs)
        trained["tokenizer"] = args[1]
        return trained["result"]

    monkeypatch.setattr(cleanroom.training, "train_dpo", keep)
    run_dpo(ctx)
    tok = trained["tokenizer"]
    want = logits(trained["result"].model, tok)

    stack = dpo_policy(ctx)
    assert stack == ("dpo/adapter",)  # DPO trained the attached SFT adapter in place
    policy, _, _ = load_model(ctx, adapters=tuple(ctx.run.path / a for a in stack), probe=False)
    base, _, _ = load_model(ctx, probe=False)
    got, base_logits = logits(policy, tok), logits(base, tok)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())
    assert float((got - base_logits).abs().max()) > 1e-3  # the eval's DPO arm is not the base model


def test_stacking_adapters_on_a_quantized_base_is_refused(tmp_path: Path) -> None:
    from cleanroom.pipeline.common import load_model

    ctx = make_ctx(tmp_path, "model.quantization=nf4", "model.dtype=auto")
    with pytest.raises(ConfigError, match="cannot be stacked"):
        load_model(ctx, adapters=(tmp_path / "a", tmp_path / "b"), probe=False)


def test_dpo_trains_on_the_backend_it_resolves_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """backend=unsloth: DPO loads through Unsloth (here: refused with the install hint, no CUDA), even in a process
    Unsloth patched; backend=peft in such a process: refused, so ``cleanroom run`` continues in a fresh one."""
    import sys
    import types

    import cleanroom.training.unsloth_backend as ub
    from cleanroom.errors import DependencyError, PatchedProcessError
    from cleanroom.pipeline.training import _dpo_model

    monkeypatch.setitem(sys.modules, "unsloth", types.ModuleType("unsloth"))  # as after an Unsloth SFT stage
    monkeypatch.setattr(ub, "unsloth_available", lambda: "CUDA is not available (unsloth needs an NVIDIA GPU)")
    ctx = make_ctx(tmp_path / "u", "backend=unsloth")
    with pytest.raises(DependencyError, match="unsloth backend unavailable: CUDA is not available"):
        _dpo_model(ctx)
    ctx = make_ctx(tmp_path / "p", "backend=peft")
    with pytest.raises(PatchedProcessError, match="dpo: Unsloth was imported in this process"):
        _dpo_model(ctx)


def test_dpo_on_unsloth_trains_the_sft_adapter_in_place_and_eval_loads_that_policy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unsloth DPO path of the pipeline on a CPU, Unsloth's loader replaced by what it does to the model (a LoRA
    shaped like sft.lora, filled with sft/adapter by load_adapter_weights): on an unquantized base the policy is
    dpo/adapter alone, provenance says unsloth, and the eval's load of that stack computes the trained model."""
    import json

    from peft import get_peft_model

    import cleanroom.training
    from cleanroom.loader import CleanModelLoader
    from cleanroom.pipeline.common import load_model
    from cleanroom.pipeline.evaluation import dpo_policy
    from cleanroom.pipeline.training import run_dpo
    from cleanroom.training import unsloth_backend
    from cleanroom.training.adapter_weights import load_adapter_weights

    lora = "{r: 4, alpha: 8, targets: [q_proj, v_proj, down_proj], dropout: 0.0}"
    ctx = make_ctx(tmp_path, "backend=unsloth", f"sft.lora={lora}", f"dpo.lora={lora}", "dpo.train.max_steps=3",
                   "dpo.train.save_steps=3", "dpo.train.learning_rate=0.05", "dpo.train.batch_size=2")
    fake_sft_and_pairs(ctx, tmp_path)

    def as_unsloth_loads(path: str, *, max_seq_length: int, quantization: Any, lora: Any, seed: int,
                         adapter: Any = None) -> tuple[Any, Any]:
        model, tokenizer, _ = CleanModelLoader(path, probe=False, dtype="float32").load()
        model = get_peft_model(model, lora.to_peft())
        model.cleanroom_adapter_tensors = load_adapter_weights(model, adapter)
        model.cleanroom_backend = "unsloth"
        return model, tokenizer

    monkeypatch.setattr(unsloth_backend, "load_unsloth", as_unsloth_loads)
    trained: dict[str, Any] = {}
    real = cleanroom.training.train_dpo

    def keep(*args: Any, **kwargs: Any) -> Any:
        trained["result"], trained["tokenizer"] = real(*args, **kwargs), args[1]
        return trained["result"]

    monkeypatch.setattr(cleanroom.training, "train_dpo", keep)
    metrics = run_dpo(ctx)
    assert metrics["policy_adapters"] == ["dpo/adapter"] == list(dpo_policy(ctx))
    record = json.loads((ctx.run.path / "dpo" / "stage.json").read_text())["attempts"][-1]
    extra, loader = record["extra"], record["loader"]
    assert extra["backend"] == "unsloth" and "frozen copy" in extra["reference"]
    assert loader["backend"] == "unsloth" and loader["adapter_tensors_verified"] == 12  # 2 layers x 3 targets x A, B
    tok = trained["tokenizer"]
    want = logits(trained["result"].model, tok)
    policy, _, _ = load_model(ctx, adapters=(ctx.run.path / "dpo" / "adapter",), probe=False)
    sft, _, _ = load_model(ctx, adapters=(ctx.run.path / "sft" / "adapter",), probe=False)
    got = logits(policy, tok)
    assert torch.allclose(got, want, atol=1e-4)  # the eval's policy is the model DPO trained
    assert not torch.allclose(got, logits(sft, tok), atol=1e-3)  # and DPO moved it away from the SFT policy

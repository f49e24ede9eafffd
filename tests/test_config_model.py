"""The model fields of the config: ``backend: auto`` and how it resolves, the production profile's pins."""

from __future__ import annotations

import re

import pytest

from cleanroom.backend import resolve_backend
from cleanroom.config import load_config
from cleanroom.errors import ConfigError


def test_production_profile_uses_auto_backend_and_validates_it():
    spec = load_config("qwen2.5-32b")
    assert spec.backend == "auto" and spec.model.quantization == "nf4"
    assert load_config("tiny", ["backend=auto"]).backend == "auto"
    with pytest.raises(ConfigError, match="backend"):
        load_config("tiny", ["backend=fastest"])


def test_auto_is_unsloth_only_with_cuda_nf4_and_an_importable_unsloth(monkeypatch):
    import cleanroom.training.unsloth_backend as ub

    monkeypatch.setattr(ub, "unsloth_available", lambda: None)
    assert resolve_backend("auto", device="cuda", quantization="nf4") == ("unsloth", "auto", "auto: CUDA and unsloth import")
    assert resolve_backend("auto", device="cpu", quantization=None).backend == "peft"
    assert resolve_backend("auto", device="cuda", quantization="int8").backend == "peft"  # unsloth has no int8 path
    monkeypatch.setattr(ub, "unsloth_available", lambda: "unsloth does not import: ImportError: no triton")
    choice = resolve_backend("auto", device="cuda", quantization="nf4")
    assert choice.backend == "peft" and "no triton" in choice.reason
    # an explicit choice is never swapped (an unusable explicit unsloth fails in the SFT stage with the hint)
    assert resolve_backend("unsloth", device="cpu", quantization=None).backend == "unsloth"
    assert resolve_backend("peft", device="cuda", quantization="nf4").backend == "peft"
    with pytest.raises(ConfigError, match=re.escape("allowed: peft | unsloth | auto")):
        resolve_backend("fast", device="cuda", quantization="nf4")

"""The model fields of the config: ``backend: auto`` and how it resolves, the production profile's pins."""

from __future__ import annotations

import json
import re

import pytest

from cleanroom.backend import resolve_backend
from cleanroom.config import load_config
from cleanroom.errors import ConfigError, InputError


def test_production_profile_uses_auto_backend_and_validates_it():
    spec = load_config("qwen2.5-32b")
    assert spec.backend == "auto" and spec.model.quantization == "nf4"
    assert load_config("tiny", ["backend=auto"]).backend == "auto"
    with pytest.raises(ConfigError, match="backend"):
        load_config("tiny", ["backend=fastest"])


def _gate_report(tmp_path, status="passed", faster=True):
    figures = {"unsloth_faster": faster, "unsloth_steady_tokens_per_s": 4511.0, "peft_steady_tokens_per_s": 1246.0,
               "unsloth_first_step_s": 26.8}
    path = tmp_path / "gate-report.json"
    path.write_text(json.dumps({"checks": [{"check": "10_unsloth", "status": status, "figures": figures,
                                            "fix": "" if status == "passed" else "losses differ"}]}))
    return path


def test_auto_is_unsloth_only_when_the_gate_measured_it_faster_at_parity(monkeypatch, tmp_path):
    import cleanroom.training.unsloth_backend as ub

    monkeypatch.setattr(ub, "unsloth_available", lambda: None)
    # importing is not evidence: without a gate report auto stays on peft and says why
    choice = resolve_backend("auto", device="cuda", quantization="nf4")
    assert choice.backend == "peft" and "no GPU gate report" in choice.reason
    faster = resolve_backend("auto", device="cuda", quantization="nf4", gate_report=_gate_report(tmp_path))
    assert faster.backend == "unsloth" and "4511.0 vs peft 1246.0" in faster.reason
    slower = resolve_backend("auto", device="cuda", quantization="nf4", gate_report=_gate_report(tmp_path, faster=False))
    assert slower.backend == "peft" and "no faster" in slower.reason
    failed = resolve_backend("auto", device="cuda", quantization="nf4",
                             gate_report=_gate_report(tmp_path, status="failed"))
    assert failed.backend == "peft" and "failed" in failed.reason and "losses differ" in failed.reason
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: cannot read it as JSON"):
        resolve_backend("auto", device="cuda", quantization="nf4", gate_report=bad)
    report = _gate_report(tmp_path)
    assert resolve_backend("auto", device="cpu", quantization=None, gate_report=report).backend == "peft"
    assert resolve_backend("auto", device="cuda", quantization="int8", gate_report=report).backend == "peft"
    monkeypatch.setattr(ub, "unsloth_available", lambda: "unsloth does not import: ImportError: no triton")
    choice = resolve_backend("auto", device="cuda", quantization="nf4", gate_report=report)
    assert choice.backend == "peft" and "no triton" in choice.reason
    # an explicit choice is never swapped (an unusable explicit unsloth fails in the SFT stage with the hint)
    assert resolve_backend("unsloth", device="cpu", quantization=None).backend == "unsloth"
    assert resolve_backend("peft", device="cuda", quantization="nf4").backend == "peft"
    with pytest.raises(ConfigError, match=re.escape("allowed: peft | unsloth | auto")):
        resolve_backend("fast", device="cuda", quantization="nf4")

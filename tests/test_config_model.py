"""The model fields of the config: ``backend: auto`` and how it resolves, the production profile's pins."""

from __future__ import annotations

import json
import re

import pytest

from cleanroom.backend import gate_evidence, resolve_backend
from cleanroom.config import load_config
from cleanroom.errors import ConfigError, InputError


def test_production_profile_uses_auto_backend_and_validates_it():
    spec = load_config("qwen2.5-32b")
    assert spec.backend == "auto" and spec.model.quantization == "nf4"
    assert load_config("tiny", ["backend=auto"]).backend == "auto"
    with pytest.raises(ConfigError, match="backend"):
        load_config("tiny", ["backend=fastest"])


def _gate_report(tmp_path, status="passed", faster=True, dpo_faster=None):
    """A report whose check 10 has the SFT figures, and the DPO ones unless *dpo_faster* is None (an older gate)."""
    figures = {"unsloth_faster": faster, "unsloth_steady_tokens_per_s": 4511.0, "peft_steady_tokens_per_s": 1246.0,
               "unsloth_first_step_s": 26.8}
    if dpo_faster is not None:
        figures |= {"unsloth_dpo_faster": dpo_faster, "unsloth_dpo_steady_tokens_per_s": 3240.0,
                    "peft_dpo_steady_tokens_per_s": 2000.0, "unsloth_dpo_first_step_s": 31.5}
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


def test_auto_is_resolved_per_stage_from_the_gates_dpo_figures(monkeypatch, tmp_path):
    """DPO reads check 10's DPO figures only: unsloth where they say faster at parity, whatever SFT's say."""
    import cleanroom.training.unsloth_backend as ub

    monkeypatch.setattr(ub, "unsloth_available", lambda: None)

    def dpo(**report):
        return resolve_backend("auto", device="cuda", quantization="nf4", gate_report=_gate_report(tmp_path, **report),
                               stage="dpo")

    faster = dpo(faster=False, dpo_faster=True)
    assert faster.backend == "unsloth" and faster.requested == "auto"
    assert "DPO on unsloth faster at parity (unsloth 3240.0 vs peft 2000.0 steady DPO tokens/s, first step 31.5 s)" \
        in faster.reason
    # the same report puts SFT on peft: the stages are resolved apart
    sft = resolve_backend("auto", device="cuda", quantization="nf4",
                          gate_report=_gate_report(tmp_path, faster=False, dpo_faster=True))
    assert sft.backend == "peft" and "unsloth no faster" in sft.reason and "DPO" not in sft.reason
    slower = dpo(faster=True, dpo_faster=False)
    assert slower.backend == "peft" and "DPO on unsloth no faster" in slower.reason and "3240.0 vs peft 2000.0" in slower.reason
    older = dpo(faster=True)  # a report from before the gate compared DPO: SFT's figures are no evidence for DPO
    assert older.backend == "peft"
    assert "did not compare DPO on unsloth with peft" in older.reason and "re-run the GPU gate" in older.reason
    # a gate whose check 4 did not pass beside check 10 writes null: not compared, not "no faster"
    report = _gate_report(tmp_path, dpo_faster=True)
    data = json.loads(report.read_text())
    data["checks"][0]["figures"]["unsloth_dpo_faster"] = None
    report.write_text(json.dumps(data))
    uncompared = resolve_backend("auto", device="cuda", quantization="nf4", gate_report=report, stage="dpo")
    assert uncompared.backend == "peft" and "did not compare DPO" in uncompared.reason and "no faster" not in uncompared.reason
    failed = dpo(status="failed", dpo_faster=True)
    assert failed.backend == "peft" and "failed" in failed.reason and "losses differ" in failed.reason
    none = resolve_backend("auto", device="cuda", quantization="nf4", stage="dpo")
    assert none.backend == "peft" and "no GPU gate report" in none.reason
    report = _gate_report(tmp_path, dpo_faster=True)
    assert resolve_backend("auto", device="cpu", quantization=None, gate_report=report, stage="dpo").backend == "peft"
    assert resolve_backend("auto", device="cuda", quantization="int8", gate_report=report, stage="dpo").backend == "peft"
    monkeypatch.setattr(ub, "unsloth_available", lambda: "unsloth does not import: ImportError: no triton")
    assert "no triton" in resolve_backend("auto", device="cuda", quantization="nf4", gate_report=report,
                                          stage="dpo").reason
    # an explicit choice is the same for both stages
    for stage in ("sft", "dpo"):
        assert resolve_backend("unsloth", device="cpu", quantization=None, stage=stage) == ("unsloth", "unsloth",
                                                                                           "configured")
        assert resolve_backend("peft", device="cuda", quantization="nf4", gate_report=report, stage=stage).backend == "peft"


def test_an_unknown_stage_is_refused_naming_the_allowed_ones(tmp_path):
    for call in (lambda: resolve_backend("peft", device="cuda", quantization="nf4", stage="merge"),
                 lambda: resolve_backend("auto", device="cuda", quantization="nf4", stage="DPO"),
                 lambda: gate_evidence(_gate_report(tmp_path, dpo_faster=True), stage="rl")):
        with pytest.raises(ConfigError, match=re.escape("allowed: sft | dpo")):
            call()
    # gate_evidence defaults to SFT's figures, as before; "dpo" reads DPO's
    assert gate_evidence(_gate_report(tmp_path, faster=True, dpo_faster=False))[0] is True
    assert gate_evidence(_gate_report(tmp_path, faster=True, dpo_faster=False), stage="dpo")[0] is False


def test_a_dpo_lora_that_would_be_ignored_is_refused():
    """DPO trains the SFT adapter in place on a quantized base and on unsloth: a different dpo.lora is refused there
    (preflight's dpo_lora check, and the DPO stage itself), and honoured on an unquantized base with peft."""
    from cleanroom.backend import dpo_lora_problem
    from cleanroom.training import LoraSpec

    sft, other = LoraSpec(r=16, alpha=32), LoraSpec(r=8, alpha=16)
    assert dpo_lora_problem(sft, other, dpo_backend="peft", quantization=None) is None
    assert dpo_lora_problem(sft, sft, dpo_backend="unsloth", quantization="nf4") is None
    on_unsloth = dpo_lora_problem(sft, other, dpo_backend="unsloth", quantization=None)
    assert on_unsloth and "on unsloth DPO trains the SFT adapter in place" in on_unsloth
    on_nf4 = dpo_lora_problem(sft, other, dpo_backend="peft", quantization="nf4")
    assert on_nf4 and "on a nf4 base" in on_nf4 and "set dpo.lora equal to sft.lora" in on_nf4


def test_auto_stays_on_peft_on_several_ranks(monkeypatch, tmp_path):
    """Unsloth trains in one process here: auto picks peft on several ranks whatever the gate says; an explicit
    unsloth stays as asked (preflight's backend_ranks check and the training stages refuse it there)."""
    import cleanroom.training.unsloth_backend as ub

    monkeypatch.setattr(ub, "unsloth_available", lambda: None)
    report = _gate_report(tmp_path, dpo_faster=True)
    for stage in ("sft", "dpo"):
        one = resolve_backend("auto", device="cuda", quantization="nf4", gate_report=report, stage=stage)
        two = resolve_backend("auto", device="cuda", quantization="nf4", gate_report=report, stage=stage, world_size=2)
        assert one.backend == "unsloth" and two.backend == "peft" and "2 ranks" in two.reason
    assert resolve_backend("unsloth", device="cuda", quantization="nf4", world_size=2).backend == "unsloth"


def test_unsloth_on_several_ranks_is_refused_with_the_fix():
    """The one rule preflight's backend_ranks check and the training stages share."""
    from cleanroom.backend import unsloth_ranks_problem

    assert unsloth_ranks_problem(("unsloth", "peft"), 1) is None
    assert unsloth_ranks_problem(("peft", "peft"), 4) is None
    problem = unsloth_ranks_problem(("peft", "unsloth"), 2)
    assert problem and "unsloth on 2 ranks is not supported" in problem and "set backend=peft" in problem

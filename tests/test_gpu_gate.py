"""The GPU gate's report on the CPU: a failing or missing required check is NO-GO, named with its fix."""

from __future__ import annotations

import json

import pytest

from cleanroom.errors import ConfigError
from cleanroom.gpu_gate import CHECKS, GateRecorder, verdict, write_report


def _record_all_but(recorder: GateRecorder, failing: str) -> None:
    for check, (_, required) in CHECKS.items():
        if not required:
            continue
        if check == failing:
            with pytest.raises(AssertionError, match="peak 92.0 GiB"):
                with recorder.check(check) as c:
                    c.figure(qwen32b_total_gib=92.0)
                    c.require(False, "qwen32b peak 92.0 GiB > 74.5 GiB budget: lower the batch to 8")
        else:
            with recorder.check(check) as c:
                c.figure(seconds=1.5, nested={"a": 1})


def test_a_failed_required_check_is_no_go_and_the_report_names_it(tmp_path) -> None:
    recorder = GateRecorder()
    recorder.set_context(device="cpu (test)", model="random qwen2.5-0.5b")
    _record_all_but(recorder, "8_memory_model")
    decision, reasons = verdict(recorder.results)
    assert decision == "NO-GO" and len(reasons) == 1 and "8_memory_model" in reasons[0]
    json_path, md_path = write_report(recorder, tmp_path / "gate")
    payload = json.loads(json_path.read_text())
    assert payload["verdict"] == "NO-GO" and payload["provenance"]["stage"] == "gpu_gate"
    assert [c["check"] for c in payload["checks"]] == [c for c, (_, req) in CHECKS.items() if req]
    md = md_path.read_text()
    assert md.startswith("# GPU deployment gate: **NO-GO**") and "lower the batch to 8" in md
    assert not list((tmp_path / "gate").glob(".*.tmp"))  # atomic writes leave no temp file


def test_every_required_check_passed_is_go_and_a_missing_one_is_not() -> None:
    recorder = GateRecorder()
    _record_all_but(recorder, failing="")
    assert verdict(recorder.results) == ("GO", [])
    del recorder.results["3_sft_steps"]
    decision, reasons = verdict(recorder.results)
    assert decision == "NO-GO" and reasons == [f"3_sft_steps ({CHECKS['3_sft_steps'][0]}) did not run"]


def test_unknown_check_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown gate check"):
        with GateRecorder().check("11_vibes"):
            pass


def test_the_data_parallel_check_is_required_only_when_the_gate_asks_for_several_gpus(monkeypatch) -> None:
    recorder = GateRecorder()
    _record_all_but(recorder, failing="")
    assert recorder.gpus_requested == 1 and verdict(recorder.results) == ("GO", [])  # one GPU: optional
    decision, reasons = verdict(recorder.results, gpus_requested=2)
    assert decision == "NO-GO" and reasons == [f"11_data_parallel ({CHECKS['11_data_parallel'][0]}) did not run"]
    with pytest.raises(pytest.skip.Exception), recorder.check("11_data_parallel"):
        pytest.skip("NOT RUN: 1 GPU visible, 2 needed")
    assert verdict(recorder.results, gpus_requested=2)[1] == ["11_data_parallel was skipped: NOT RUN: 1 GPU visible, "
                                                             "2 needed"]
    monkeypatch.setenv("CLEANROOM_GATE_GPUS", "2")
    assert GateRecorder().gpus_requested == 2
    monkeypatch.setenv("CLEANROOM_GATE_GPUS", "two")
    with pytest.raises(ConfigError, match="CLEANROOM_GATE_GPUS = 'two'"):
        GateRecorder()

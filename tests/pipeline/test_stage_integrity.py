"""A finished stage whose files or records fail its manifest stops the run at that edge, before any stage consumes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Imported at collection on purpose: pytester (tests/test_pytest_plugin.py) restores sys.modules after each
# test, so a torch first imported inside one of its tests is dropped, and importing it again in this
# process crashes. The stages below import torch (resolve_device); having it loaded first keeps them safe.
import torch  # noqa: F401

from cleanroom.config import load_config
from cleanroom.errors import ProvenanceError
from cleanroom.pipeline import stage1 as pipeline
from cleanroom.verify import verify_stage

from .test_stage1 import SMALL

NAMES = [name for name, _ in pipeline.STAGES]


def _cheap_stage(name: str, prev: str | None):
    """A real stage (RunDir/StageWriter, records chained to the previous stage's) without a model: the
    pipeline's loop, caching and integrity checks run exactly as in a real run."""

    def run(ctx) -> None:
        prov = pipeline.capture(ctx, name)
        inputs = [f"{prev}/records.jsonl"] if prev else []
        with ctx.run.stage(name, provenance=prov, inputs=inputs) as st:
            w = st.jsonl("records.jsonl")
            for i in range(3):
                parents = [ctx.run.ref(f"{prev}/records.jsonl", f"{prev}:{i}")] if prev else []
                w.write({"text": f"{name} record {i}"}, parents=parents, record_id=f"{name}:{i}")
            (st.dir / "metrics.json").write_text(json.dumps({"stage": name}))

    return run


@pytest.fixture
def cheap_pipeline(monkeypatch: pytest.MonkeyPatch):
    stages = [(name, _cheap_stage(name, NAMES[i - 1] if i else None)) for i, name in enumerate(NAMES)]
    monkeypatch.setattr(pipeline, "STAGES", stages)
    return load_config("tiny", SMALL)


def _flip_byte(path: Path, line: int) -> None:
    data = bytearray(path.read_bytes())
    start = sum(len(raw) for raw in data.splitlines(keepends=True)[: line - 1])
    data[start + data[start:].index(b"record")] ^= 0x20  # "record" -> "Record": one bit, still valid JSON
    path.write_bytes(bytes(data))


def _edit_record(path: Path, line: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[line - 1])
    record["text"] = "an edited but well-formed record"
    lines[line - 1] = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
    path.write_bytes(b"".join(lines))


def _corrupt_metrics(path: Path, line: int) -> None:
    path.write_bytes(path.read_bytes().replace(b"{", b"[", 1))


@pytest.mark.parametrize("edit", [_flip_byte, _edit_record, _corrupt_metrics], ids=["flipped-byte", "edited-record",
                                                                                   "other-file"])
@pytest.mark.parametrize("broken", NAMES)
def test_a_tampered_finished_stage_stops_the_run_before_anything_consumes_it(
    tmp_path: Path, cheap_pipeline, broken: str, edit, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = cheap_pipeline
    run = pipeline.run_stage1(spec, tmp_path, progress=False, stop_after=NAMES[-1])
    manifests = {n: (run / n / "manifest.json").read_bytes() for n in NAMES}
    records = {n: (run / n / "records.jsonl").read_bytes() for n in NAMES}
    target = run / broken / ("metrics.json" if edit is _corrupt_metrics else "records.jsonl")
    edit(target, 2)
    capsys.readouterr()

    with pytest.raises(ProvenanceError) as err:
        pipeline.run_stage1(spec, tmp_path, resume=True, progress=False, stop_after=NAMES[-1])
    where = f"{broken}/metrics.json" if edit is _corrupt_metrics else f"{broken}/records.jsonl line 2"
    assert str(err.value).startswith(where), str(err.value)
    assert err.value.exit_code == 1
    out = capsys.readouterr().out
    assert "re-running" not in out and ": running" not in out  # nothing ran on the tampered artifact
    for n in NAMES:  # every other stage untouched, the broken one left as evidence
        assert (run / n / "manifest.json").read_bytes() == manifests[n]
        if n != broken:
            assert (run / n / "records.jsonl").read_bytes() == records[n]
    # `cleanroom verify` names the same first edge within the stage
    first = [e for e in verify_stage_errors(run) if e.file.startswith(broken)][0]
    assert first.message.startswith(where)


def verify_stage_errors(run: Path) -> list:
    return [e for n in NAMES for e in verify_stage(run, n)]


def test_an_intact_run_is_reused_and_verify_agrees(tmp_path: Path, cheap_pipeline,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = pipeline.run_stage1(cheap_pipeline, tmp_path, progress=False, stop_after=NAMES[-1])
    assert verify_stage_errors(run) == []
    capsys.readouterr()
    pipeline.run_stage1(cheap_pipeline, tmp_path, resume=True, progress=False, stop_after=NAMES[-1])
    assert capsys.readouterr().out.count("done earlier, skipped") == len(NAMES)


def test_removing_the_broken_stage_re_makes_it_from_its_own_inputs(tmp_path: Path, cheap_pipeline,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    run = pipeline.run_stage1(cheap_pipeline, tmp_path, progress=False, stop_after=NAMES[-1])
    sft_before = (run / "sft" / "manifest.json").read_text()
    _edit_record(run / "sft_data" / "records.jsonl", 1)
    with pytest.raises(ProvenanceError):
        pipeline.run_stage1(cheap_pipeline, tmp_path, resume=True, progress=False, stop_after=NAMES[-1])
    shutil.rmtree(run / "sft_data")
    capsys.readouterr()
    pipeline.run_stage1(cheap_pipeline, tmp_path, resume=True, progress=False, stop_after=NAMES[-1])
    out = capsys.readouterr().out
    assert "sft_data: running" in out and "baseline: done earlier, skipped" in out, out
    assert verify_stage_errors(run) == []
    # sft re-ran exactly when the re-made file differs from the one it consumed (same second: same bytes)
    from cleanroom.provenance import digest_path

    recorded = json.loads((run / "sft" / "manifest.json").read_text())["inputs"][0]["sha256"]
    assert recorded == digest_path(run / "sft_data" / "records.jsonl", cache=False)
    assert ("sft: running" in out) == (recorded != json.loads(sft_before)["inputs"][0]["sha256"])

"""A finished stage is reused only while its inputs keep the digests its manifest recorded; otherwise it and every later stage re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_stage1 import SMALL

pytestmark = pytest.mark.slow


def test_a_changed_input_reruns_its_stage_and_everything_downstream(tmp_path: Path, tiny_base_model: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from cleanroom.cli.run_cmd import load_pipeline
    from cleanroom.config import load_config

    pipeline = load_pipeline()
    spec = load_config("tiny", SMALL)
    run = pipeline.run_stage1(spec, tmp_path, progress=False, stop_after="sft_data")
    before = {s: (run / s / "manifest.json").read_bytes() for s in ("preflight", "baseline", "sft_data")}

    pipeline.run_stage1(spec, tmp_path, resume=True, progress=False, stop_after="sft_data")
    out = capsys.readouterr().out
    assert out.count("done earlier, skipped") == 3 and "re-running" not in out
    assert {s: (run / s / "manifest.json").read_bytes() for s in before} == before

    # baseline's input changes under it (one eval prompt fewer): baseline and sft_data re-run, preflight does not
    prompts = run / "preflight" / "eval_prompts.jsonl"
    lines = prompts.read_text().splitlines(keepends=True)
    prompts.write_text("".join(lines[:-1]))
    pipeline.run_stage1(spec, tmp_path, resume=True, progress=False, stop_after="sft_data")
    out = capsys.readouterr().out
    assert "baseline: inputs changed since it ran (preflight/eval_prompts.jsonl)" in out
    assert "preflight: done earlier, skipped" in out and "sft_data: running" in out
    assert (run / "preflight" / "manifest.json").read_bytes() == before["preflight"]
    verdicts = (run / "baseline" / "base_verdicts.jsonl").read_text().splitlines()
    assert len(verdicts) == len(lines) - 1  # answered afresh, not the old records resumed
    manifest = json.loads((run / "baseline" / "manifest.json").read_text())
    assert manifest["inputs"][0]["sha256"] != json.loads(before["baseline"])["inputs"][0]["sha256"]

"""A finished stage is reused only while its inputs keep the digests its manifest recorded; otherwise it and every later stage re-run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cleanroom.errors import ProvenanceError

from .test_stage1 import SMALL

pytestmark = pytest.mark.slow


def test_a_changed_input_reruns_its_stage_and_everything_downstream(tmp_path: Path, tiny_base_model: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from cleanroom.config import load_config
    from cleanroom.pipeline import stage1 as pipeline

    spec = load_config("tiny", SMALL)
    run = pipeline.run_stage1(spec, tmp_path, progress=False, stop_after="sft_data")
    before = {s: (run / s / "manifest.json").read_bytes() for s in ("preflight", "baseline", "sft_data")}

    pipeline.run_stage1(spec, tmp_path, resume=True, progress=False, stop_after="sft_data")
    out = capsys.readouterr().out
    assert out.count("done earlier, skipped") == 3 and "re-running" not in out
    assert {s: (run / s / "manifest.json").read_bytes() for s in before} == before

    # an artifact edited in place fails its manifest: the run stops at that edge and nothing consumes it
    prompts = run / "preflight" / "eval_prompts.jsonl"
    lines = prompts.read_text().splitlines(keepends=True)
    prompts.write_text("".join(lines[:-1]))
    with pytest.raises(ProvenanceError, match="^preflight/eval_prompts.jsonl: record count in manifest"):
        pipeline.run_stage1(spec, tmp_path, resume=True, progress=False, stop_after="sft_data")
    out = capsys.readouterr().out
    assert ": running" not in out and "re-running" not in out
    assert {s: (run / s / "manifest.json").read_bytes() for s in before} == before

    # re-made from its own inputs, preflight's records are new files (new provenance): baseline's input
    # changed, so baseline and sft_data re-run on them
    shutil.rmtree(run / "preflight")
    pipeline.run_stage1(spec, tmp_path, resume=True, progress=False, stop_after="sft_data")
    out = capsys.readouterr().out
    assert "preflight: running" in out and "sft_data: running" in out
    assert "baseline: inputs changed since it ran (preflight/eval_prompts.jsonl" in out
    manifest = json.loads((run / "baseline" / "manifest.json").read_text())
    assert manifest["inputs"][0]["sha256"] != json.loads(before["baseline"])["inputs"][0]["sha256"]

"""Stage 1 end to end on the tiny CPU profile (shrunk): every stage, report, verify, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SMALL = [
    "data.n_eval=24", "eval.min_n=24", "eval.override_reason=CPU smoke test of the pipeline, not a measurement",
    "data.n_sft=24", "data.min_sft_survivors=8", "pairs.n_instructions=8", "pairs.min_pairs=2",
    "baseline.max_new_tokens=6", "sft_generation.max_new_tokens=6", "eval.generation.max_new_tokens=6",
    "pairs.generation.max_new_tokens=6", "sft.train.batch_size=2", "dpo.train.batch_size=2",
    "dpo.train.max_steps=2", "sft.train.early_stopping_patience=null", "sft.eval_fraction=0",
]


def run_cli(*args: str, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "cleanroom.cli", *args], cwd=out, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def run_dir(out: Path) -> Path:
    (path,) = [p for p in (out / "runs").iterdir() if p.is_dir()]
    return path


@pytest.mark.slow
def test_tiny_pipeline_killed_mid_sft_resumes_and_verifies(tmp_path: Path, tiny_base_model: Path) -> None:
    overrides = [*SMALL, "sft.train.max_steps=8", "sft.train.save_steps=2"]
    proc = run_cli("run", "stage1", "--profile", "tiny", "--out", "runs", "--no-progress", *overrides, out=tmp_path)
    deadline = time.monotonic() + 300
    checkpoint = None
    while time.monotonic() < deadline and proc.poll() is None:
        runs = tmp_path / "runs"
        found = sorted(runs.glob("*/.work/sft/checkpoint-*/trainer_state.json")) if runs.exists() else []
        if found:
            checkpoint = found[0]
            break
        time.sleep(0.2)
    assert checkpoint is not None, "SFT never wrote a checkpoint: " + (proc.stdout.read() if proc.poll() is not None else "")
    os.kill(proc.pid, signal.SIGKILL)  # mid-SFT: the stage has no manifest yet
    proc.wait()
    run = run_dir(tmp_path)
    assert not (run / "sft" / "manifest.json").exists()
    records_before = {p.name: p.read_text().count("\n") for p in (run / "sft_data").glob("*.jsonl")}

    resumed = run_cli("run", "stage1", "--profile", "tiny", "--out", "runs", "--no-progress", "--resume",
                      *overrides, out=tmp_path)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "sft_data: done earlier, skipped" in output and "Stage 2:" in output
    # --no-progress: no bar of any library (model loading, trainer) and no per-step loss dict on the terminal;
    # the loss dicts and the pipeline's lines are in the run log instead
    assert "Loading weights" not in output and "it/s]" not in output and "{'loss'" not in output, output
    log = (run / "run.log").read_text()
    assert "sft: {'loss'" in log and "dpo: {'loss'" in log and "dpo: running" in log
    metrics = json.loads((run / "sft" / "metrics.json").read_text())
    assert metrics["resumed_from"], "SFT restarted from scratch instead of resuming its checkpoint"
    assert metrics["steps"] == 8
    # one process: world size 1 on record in the metrics and the stage's provenance (distributed.lead)
    assert metrics["distributed"]["world_size"] == 1 and metrics["distributed"]["global_batch_size"] > 0
    sft_prov = json.loads((run / "sft" / "manifest.json").read_text())["provenance"]["extra"]["distributed"]
    assert sft_prov == {"world_size": 1, "backend": None, "devices": ["cpu"]}
    assert {p.name: p.read_text().count("\n") for p in (run / "sft_data").glob("*.jsonl")} == records_before
    for name in ("report.md", "report.html"):
        assert (run / "report" / name).stat().st_size > 1000
    html = (run / "report" / "report.html").read_text()
    assert "<svg" in html and "Stage 2:" in html and "programmatic teacher" in html
    dpo = json.loads((run / "dpo" / "metrics.json").read_text())
    assert abs(dpo["step0_loss"] - 0.6931471805599453) < 1e-3
    verify = subprocess.run([sys.executable, "-m", "cleanroom.cli", "verify", str(run)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # a second run of the same config reuses every stage (cached by the config digest)
    again = run_cli("run", "stage1", "--profile", "tiny", "--out", "runs", "--no-progress", *overrides, out=tmp_path)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0 and output.count("done earlier, skipped") == 8, output


def test_estimate_for_the_production_profile(tmp_path: Path) -> None:
    """--estimate applies the real run's model.revision rule: the Hub id unpinned is refused (exit 2, the same
    fix preflight names); pinned, it prints the estimate."""
    cmd = [sys.executable, "-m", "cleanroom.cli", "run", "stage1", "--profile", "qwen2.5-32b", "--estimate"]
    unpinned = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert unpinned.returncode == 2 and "model.revision=<commit>" in unpinned.stderr and not unpinned.stdout
    result = subprocess.run([*cmd, "model.revision=" + "0123456789abcdef" * 2 + "01234567"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    est = json.loads(result.stdout)
    assert est["memory"]["device_gb"] == 80 and est["memory"]["max_batch_size"] >= 1
    assert est["cost"]["hours"] > 0 and est["cost"]["price_per_hour"] == 1.74


def test_bad_override_exits_2_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cleanroom.cli", "run", "stage1", "--profile", "tiny",
                             "sft.lora.rank=3"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown key(s) 'rank'" in result.stderr
    assert not (tmp_path / "runs").exists(), "nothing may be written before the config validates"

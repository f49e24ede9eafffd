"""What `cleanroom run` tells the user when it stops: a failed preflight, Ctrl-C, and the run log on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cleanroom.errors import ConfigError

from .test_stage1 import SMALL


def test_a_failed_preflight_says_failed_and_leaves_no_run_to_resume(tmp_path: Path, tiny_base_model: Path) -> None:
    """24 eval prompts under eval.min_n=200 with no override reason: preflight fails; the fresh run directory is
    removed (a re-run with the same config is not told to --resume) and the message says it failed."""
    from cleanroom.config import load_config
    from cleanroom.pipeline import stage1

    bad = [o for o in SMALL if not o.startswith(("eval.min_n", "eval.override_reason"))]
    spec = load_config("tiny", bad)
    for _ in range(2):  # the second attempt fails the same way, not with "pass --resume"
        with pytest.raises(ConfigError) as info:
            stage1.run_stage1(spec, tmp_path, progress=False)
        message = str(info.value)
        assert "eval_size" in message and "preflight failed" in message and "nothing was kept" in message
        assert "interrupted" not in message and "--resume" not in message
        assert list(tmp_path.iterdir()) == []


def test_ctrl_c_prints_the_resume_command_on_a_line_of_its_own(tmp_path: Path, tiny_base_model: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "cleanroom.cli", "run", "stage1", "--profile", "tiny", "--out", "runs", *SMALL]
    # Ctrl-C as at a terminal: SIGINT at its default. A process started with it ignored inherits SIG_IGN, and
    # Python then installs no KeyboardInterrupt handler (how a background job is meant to behave); pytest-xdist's
    # workers ignore SIGINT, so without this the run never sees the signal under `pytest -n`.
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        if "baseline: running" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.splitlines()
    (i,) = [k for k, line in enumerate(lines) if line.startswith("cleanroom run: interrupted")]
    assert lines[i + 1].strip().startswith("cleanroom run stage1 --profile tiny --out runs ")
    assert lines[i + 1].strip().endswith("--resume") and "eval.min_n=24" in lines[i + 1]
    (run,) = (tmp_path / "runs").iterdir()
    log = (run / "run.log").read_text()
    assert "preflight: finished" in log and "baseline: running" in log


def test_stamped_lines_prefix_each_complete_line(tmp_path: Path) -> None:
    from cleanroom.pipeline.runlog import StampedLines

    with open(tmp_path / "log", "w") as sink:
        stream = StampedLines(sink, "sft")
        stream.write("{'loss': 1.0}\n{'lo")
        stream.write("ss': 0.5}\n\n")
        stream.write("tail")
        stream.flush()
    lines = (tmp_path / "log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["sft: {'loss': 1.0}", "sft: {'loss': 0.5}", "sft: tail"]
    assert all(line[:4].isdigit() and line[10] == "T" for line in lines)


def test_run_without_arguments_asks_for_the_pipeline_only(capsys: pytest.CaptureFixture[str]) -> None:
    from cleanroom.cli import main

    with pytest.raises(SystemExit) as info:
        main(["run"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "required: pipeline" in err and "key=value" not in err.splitlines()[-1]

"""`run stage1 --estimate` refuses the prompt files the real run's preflight refuses, with the same one-line error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cleanroom.cli import main

PROMPT = {"key": 1, "prompt": "Write about rivers.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}

# defect -> (file contents or None for no file, extra overrides, what the message names)
DEFECTS = {
    "missing": (None, [], "MissingFileError: data.eval_prompts: prompts.jsonl does not exist"),
    "malformed": ('{"key": 1, "prompt": "x"\n', [], "InputError: prompts.jsonl line 1: not valid JSON"),
    "changed against its pin": (json.dumps(PROMPT) + "\n", ["data.eval_prompts_sha256=" + "ab" * 32],
                                "ConfigError: data.eval_prompts: prompts.jsonl has sha256 "),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_estimate_refuses_a_prompt_file_the_run_refuses(defect, tmp_path, monkeypatch, capsys) -> None:
    """Before: --estimate printed its figures and exited 0 for each of these; the run then stopped at preflight."""
    text, extra, named = DEFECTS[defect]
    if text is not None:
        (tmp_path / "prompts.jsonl").write_text(text)
    overrides = ["data.eval_prompts=prompts.jsonl", *extra]
    monkeypatch.chdir(tmp_path)
    assert main(["run", "stage1", "--profile", "tiny", "--estimate", *overrides]) == 2
    captured = capsys.readouterr()
    estimate_error = captured.err.strip()
    assert not captured.out and "\n" not in estimate_error and named in estimate_error
    run = subprocess.run([sys.executable, "-m", "cleanroom.cli", "run", "stage1", "--profile", "tiny", "--out", "runs",
                          "--no-progress", *overrides], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    # the same error, word for word; the run adds what happened to the run directory
    assert run.stderr.strip().splitlines()[-1].startswith(estimate_error)


def test_estimate_reads_the_users_sft_pool_too(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "stage1", "--profile", "tiny", "--estimate", "data.sft_pool=pool.jsonl"]) == 2
    assert "data.sft_pool: pool.jsonl does not exist" in capsys.readouterr().err
    (tmp_path / "pool.jsonl").write_text(json.dumps(PROMPT) + "\n")
    assert main(["run", "stage1", "--profile", "tiny", "--estimate", "data.sft_pool=pool.jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["cost"]["hours"] > 0

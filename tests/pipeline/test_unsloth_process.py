"""A peft stage refuses to run in a process Unsloth has patched; ``cleanroom run`` continues in a fresh one."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from cleanroom.cli import run_cmd
from cleanroom.errors import ConfigError, PatchedProcessError
from cleanroom.pipeline.training import FRESH_PROCESS_ENV, refuse_patched_process

SRC = Path(__file__).resolve().parents[2] / "src"


def test_dpo_refuses_a_process_where_unsloth_was_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "unsloth", raising=False)
    refuse_patched_process("dpo")  # a clean process: nothing to refuse
    monkeypatch.setitem(sys.modules, "unsloth", types.ModuleType("unsloth"))
    with pytest.raises(ConfigError, match=r"dpo: Unsloth was imported in this process.*with --resume") as info:
        refuse_patched_process("dpo")
    assert isinstance(info.value, PatchedProcessError) and info.value.stage == "dpo"


def test_a_refusal_in_the_fresh_process_or_under_a_launcher_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    """No loop: the fresh process refusing the same stage again is an error, and a launcher's rank is never replaced."""
    args = argparse.Namespace(pipeline="stage1", profile="tiny", out=Path("runs"), gate_report=None, stop_after=None,
                              resume=False, no_progress=True, overrides=[])
    exc = PatchedProcessError("dpo: patched", stage="dpo")
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail(f"execv called: {a}"))
    monkeypatch.setenv(FRESH_PROCESS_ENV, "dpo")
    with pytest.raises(PatchedProcessError):
        run_cmd._continue_in_fresh_process(args, exc)
    monkeypatch.delenv(FRESH_PROCESS_ENV)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(PatchedProcessError):
        run_cmd._continue_in_fresh_process(args, exc)


@pytest.mark.slow
def test_cleanroom_run_continues_dpo_in_a_fresh_process(tmp_path: Path) -> None:
    """The whole command: a process where ``unsloth`` was imported runs up to DPO, DPO refuses it, and the same
    ``cleanroom run`` replaces itself with a ``--resume`` that reuses every finished stage and trains DPO in an
    unpatched process; the run log and DPO's provenance say so. (The import is planted by a ``sitecustomize``
    that only the first process runs: Unsloth itself needs CUDA.)"""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys, types\n"
        f"if not os.environ.get({FRESH_PROCESS_ENV!r}):\n"
        "    sys.modules['unsloth'] = types.ModuleType('unsloth')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC)]), "HF_HUB_OFFLINE": "1"}
    env.pop(FRESH_PROCESS_ENV, None)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "cleanroom.cli", "run", "stage1", "--profile", "tiny", "--out", str(out),
           "--stop-after", "dpo", "--no-progress", "data.n_eval=20", "eval.min_n=20",
           "eval.override_reason=the fresh-process test stops after DPO", "data.n_sft=16",
           "data.min_sft_survivors=8", "pairs.n_instructions=6", "pairs.min_pairs=4", "dpo.train.max_steps=1",
           "dpo.train.batch_size=2", "sft.train.max_steps=1", "sft.train.batch_size=2", "baseline.max_new_tokens=4",
           "pairs.generation.max_new_tokens=8"]  # one small step each: what is tested is where DPO runs, not how far
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cleanroom run: dpo continues in a fresh process" in done.stderr
    (run,) = out.iterdir()
    log = (run / "run.log").read_text()
    assert "dpo: refused in this process: dpo: Unsloth was imported" in log
    assert "sft: done earlier, skipped (inputs unchanged)" in log  # the fresh process reused the stages
    stage = json.loads((run / "dpo" / "stage.json").read_text())
    assert '"fresh_process": true' in json.dumps(stage)
    assert (run / "dpo" / "adapter").is_dir() and (run / "dpo" / "manifest.json").exists()


def test_unsloths_tokenizer_and_model_are_checked_against_the_clean_ones(tmp_path: Path) -> None:
    """What ``load_unsloth`` checks before it drops Unsloth's tokenizer, on the tiny model (Unsloth itself needs
    CUDA): the shipped tokenizer re-cleaned passes; an added token or a resized embedding is refused."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cleanroom import fixtures
    from cleanroom.errors import ContaminationError
    from cleanroom.loader import CleanModelLoader
    from cleanroom.training.unsloth_backend import _check_against_clean

    path = str(fixtures.tiny_base_model())
    clean, _ = CleanModelLoader(path, probe=False).load_tokenizer(decide=False)
    model = AutoModelForCausalLM.from_pretrained(path)
    _check_against_clean(path, model, AutoTokenizer.from_pretrained(path), clean)  # the shipped one, re-cleaned: passes
    grown = AutoTokenizer.from_pretrained(path)
    grown.add_tokens(["<|unsloth_pad|>"], special_tokens=True)
    with pytest.raises(ContaminationError, match="still differs from the clean loader's after cleaning"):
        _check_against_clean(path, model, grown, clean)
    model.resize_token_embeddings(model.get_input_embeddings().weight.shape[0] + 64)
    with pytest.raises(ContaminationError, match="Unsloth resized the vocabulary"):
        _check_against_clean(path, model, AutoTokenizer.from_pretrained(path), clean)

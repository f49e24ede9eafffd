"""pipeline.ranks and `run stage1 --num-processes`: one process is untouched; N re-launches the same command."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from cleanroom import distributed
from cleanroom.cli.run_cmd import _launched_argv
from cleanroom.pipeline import ranks


def test_one_process_neither_leads_nor_follows(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(distributed, "_send", lambda message: (_ for _ in ()).throw(AssertionError("sent")))
    said = []
    ctx = argparse.Namespace(say=said.append, run=argparse.Namespace(path=Path("/runs/x")))
    distributed.lead(ctx, "sft")
    distributed.finish()
    assert not ranks.is_follower() and said == []


def test_num_processes_relaunches_the_same_run_on_every_rank(monkeypatch):
    args = argparse.Namespace(pipeline="stage1", profile="tiny", out=Path("runs"), gate_report=None, stop_after="sft",
                              resume=True, no_progress=True, overrides=["data.n_sft=16"])
    argv = _launched_argv(args)
    assert argv == ["run", "stage1", "--profile", "tiny", "--out", "runs", "--stop-after", "sft", "--resume",
                    "--no-progress", "data.n_sft=16"]
    seen = {}

    def fake_run(cmd, env):
        seen.update(cmd=cmd, env=env)
        return subprocess.CompletedProcess(cmd, 3)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert ranks.relaunch(2, argv, cpu=True) == 3  # the launcher's exit code is the command's
    cmd = seen["cmd"]
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[cmd.index("-m", 3):] == ["-m", "cleanroom.cli", *argv]
    assert seen["env"]["ACCELERATE_USE_CPU"] == "1" and seen["env"]["CLEANROOM_WORLD_SIZE"] == "2"


def test_a_follower_draws_no_progress_bars_and_restores_them(monkeypatch):
    from transformers.utils import logging as hf_logging

    seen = []

    def receive():
        seen.append(hf_logging.is_progress_bar_enabled())
        return ("done", None)

    hf_logging.enable_progress_bar()
    monkeypatch.setattr(distributed, "receive_stage", receive)
    ranks.follow(spec=None)
    assert seen == [False]  # while following: rank 0's bars are the run's
    assert hf_logging.is_progress_bar_enabled()  # and as they were afterwards

"""Stage 1 on 2 gloo ranks, killed mid-SFT and resumed, verifies and equals one process: records, losses, adapters.

The CPU proof of issue 20 on the tiny profile shrunk to run in CI (about 2 minutes on 2 cores for both runs):
every generating stage shards its batches over the ranks, SFT and DPO run data-parallel with the profile's
global batch. Against one process on the same config (the same run id):

* records: every record file of preflight, baseline and SFT data (the base model's; generation sharded by
  batch) and of pairs (the SFT model's, greedy) holds the same records in the same order -- payload, record
  id and parent links; only the provenance block differs (it names the attempt: its time, and on 2 ranks the
  world). Pairs are generated greedily here (``pairs.generation.temperature=0``): the two runs' SFT adapters
  differ by float32 noise (~1e-7), and a sampled draw from the random tiny model's near-flat distribution
  can move with it, which is the training's reduction order, not the sharding (the base model's stages,
  identical weights, compare exactly whatever the temperature). The one-process run stops after DPO (time);
  the 2-rank run's eval is checked by ``cleanroom verify``;
* training: the losses within 1e-5 relative and the adapters within 1e-5 absolute, the tolerance and its
  reasoning of tests/training/test_ddp_launch.py (measured here: 8e-8 on SFT's losses, 2e-6 on DPO's,
  3e-7 on the adapters). The training rows are cut to whole global batches in both runs
  (``distributed.whole_global_batches``), so the last step is the same on both;
* provenance: each sharded or data-parallel stage records world size 2, gloo and both ranks' devices.

Rank 1 is killed (SIGKILL) once SFT's first checkpoint is on disk; torchrun stops rank 0, and ``--resume`` on
2 ranks continues from the checkpoint to the same adapters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cleanroom.artifacts import read_records
from cleanroom.training import ddp_check

pytestmark = pytest.mark.slow

LOSS_RTOL = 1e-5
ADAPTER_ATOL = 1e-5
OVERRIDES = [
    "data.n_eval=12", "eval.min_n=12", "eval.override_reason=CPU proof of sharded Stage 1, not a measurement",
    "data.n_sft=16", "data.min_sft_survivors=8", "pairs.n_instructions=4", "pairs.min_pairs=2",
    "baseline.max_new_tokens=4", "baseline.batch_size=4", "eval.generation.max_new_tokens=4",
    "eval.generation.batch_size=4", "pairs.generation.max_new_tokens=4", "pairs.generation.batch_size=4",
    "pairs.generation.temperature=0", "sft.train.batch_size=4", "sft.train.save_steps=2", "sft.eval_fraction=0",
    "sft.train.early_stopping_patience=null", "dpo.train.batch_size=2",
]
TWO_RANKS = {"world_size": 2, "backend": "gloo", "devices": ["cpu:0", "cpu:0"]}


def stage1(out: Path, *args: str, mark: str) -> subprocess.Popen:
    """``cleanroom run stage1`` on the shrunk tiny profile; *mark* tags every process it starts (its ranks)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", CLEANROOM_TEST_MARK=mark)
    return subprocess.Popen([sys.executable, "-m", "cleanroom.cli", "run", "stage1", "--profile", "tiny", "--out",
                             str(out), "--no-progress", *args, *OVERRIDES],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def rank_pid(mark: str, rank: int) -> int | None:
    """The process of *rank* among those started under *mark* (from /proc: its environment)."""
    want = {f"CLEANROOM_TEST_MARK={mark}".encode(), f"RANK={rank}".encode()}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and want <= set((proc / "environ").read_bytes().split(b"\0")):
                return int(proc.name)
        except OSError:  # gone meanwhile, or not ours
            continue
    return None


def records(path: Path) -> list[tuple[str, dict[str, Any], list]]:
    """Each record without the provenance that names its attempt: (record id, payload, parent links)."""
    return [(r["provenance"]["record_id"], {k: v for k, v in r.items() if k != "provenance"},
             [(p["artifact"], p["record_id"]) for p in r["provenance"]["parents"]]) for r in read_records(path)]


def training_result(run: Path) -> Path:
    """The run's SFT and DPO in the layout ddp_check.differences reads (result.json beside the adapters)."""
    result = {stage: json.loads((run / stage / "metrics.json").read_text()) for stage in ("sft", "dpo")}
    (run / "result.json").write_text(json.dumps(result))
    return run


def test_two_gloo_ranks_killed_mid_sft_resume_verify_and_equal_one_process(tmp_path: Path,
                                                                           tiny_base_model: Path) -> None:
    reference = stage1(tmp_path / "one", "--stop-after", "dpo", mark=f"{tmp_path}/one")  # beside the 2 ranks
    mark = f"{tmp_path}/two"
    first = stage1(tmp_path / "two", "--num-processes", "2", mark=mark)
    deadline, killed = time.monotonic() + 240, None
    while time.monotonic() < deadline and first.poll() is None and killed is None:
        if list((tmp_path / "two").glob("*/.work/sft/checkpoint-*/trainer_state.json")):
            killed = rank_pid(mark, 1)
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    output = first.communicate(timeout=120)[0]
    assert killed is not None, "rank 1 was never killed mid-SFT:\n" + output[-3000:]
    assert first.returncode != 0, output[-3000:]  # torchrun stopped rank 0 too
    (run,) = (tmp_path / "two").iterdir()
    assert not (run / "sft" / "manifest.json").exists() and (run / "baseline" / "manifest.json").exists()

    resumed = stage1(tmp_path / "two", "--num-processes", "2", "--resume", mark=mark)
    output = resumed.communicate(timeout=400)[0]
    assert resumed.returncode == 0, output[-3000:]
    assert "baseline: done earlier, skipped" in output and "eval: generation sharded by batch over 2 ranks (gloo)" in output
    verify = subprocess.run([sys.executable, "-m", "cleanroom.cli", "verify", str(run)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stdout.startswith("ok: "), verify.stdout + verify.stderr
    assert not list((run / ".work").glob("*/parts")), "part files left after their merge"

    ref_output = reference.communicate(timeout=400)[0]
    assert reference.returncode == 0, ref_output[-3000:]
    (ref,) = (tmp_path / "one").iterdir()
    assert ref.name == run.name  # the same config, so the same run id
    compared = 0
    for path in sorted(ref.glob("*/*.jsonl")):  # every record file of the stages both ran (eval: 2 ranks only)
        rel = path.relative_to(ref)
        assert records(run / rel) == records(path), f"{rel} differs between one process and 2 ranks"
        compared += 1
    assert compared == 8  # preflight 2, baseline 2, sft_data 2, pairs 2
    metrics = json.loads((run / "sft" / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-2") and metrics["steps"] == 4
    diff = ddp_check.differences(training_result(ref), training_result(run), loss_rtol=LOSS_RTOL,
                                 adapter_atol=ADAPTER_ATOL)
    assert diff["sft"]["ok"] and diff["dpo"]["ok"], diff
    for stage in ("baseline", "sft", "pairs", "dpo", "eval"):
        manifest = json.loads((run / stage / "manifest.json").read_text())
        assert manifest["provenance"]["extra"]["distributed"] == TWO_RANKS, stage
    one = json.loads((ref / "baseline" / "manifest.json").read_text())["provenance"]["extra"]["distributed"]
    assert one == {"world_size": 1, "backend": None, "devices": ["cpu"]}
    assert json.loads((run / "sft" / "metrics.json").read_text())["distributed"]["global_batch_size"] == 4

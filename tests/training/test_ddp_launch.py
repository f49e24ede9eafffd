"""Data-parallel SFT and DPO on 2 CPU ranks (gloo) match one process on the same global batch; a killed rank resumes.

Tolerance. Both runs take the same optimizer steps on the same examples: the global batch (per-device x ranks x
accumulation) is held at 4, accelerate gives rank r the batches r, r + 2, ... of the one-process order, and DDP
all-reduces the gradients (transformers scales each rank's token-mean loss by the global token count, so the
average is the one-process gradient). What differs is only the float32 summation order of that reduction:
measured, 2e-6 on a loss of 11.76 (1.6e-7 relative, one or two float32 ulps) and 9e-7 on adapter weights of
size 0.14. We allow 1e-5 relative on every logged loss and 1e-5 absolute on every adapter weight: ten times
the measured noise, still ten times below the smallest real change the runs make (one SFT step moves the loss
by 0.04 and the weights by 1e-2 at lr 1e-2), so a wrong shard, a missing gradient average or a global batch
that doubled fails by orders of magnitude.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.training import ddp_check

pytestmark = pytest.mark.slow

LOSS_RTOL = 1e-5
ADAPTER_ATOL = 1e-5


def _launch(out: Path, model: Path, n: int, *extra: str) -> subprocess.CompletedProcess:
    return ddp_check.launch(out, model, n, cpu=True, extra=extra, timeout_s=400)


def _assert_same_training(ref: Path, got: Path) -> None:
    diff = ddp_check.differences(ref, got, loss_rtol=LOSS_RTOL, adapter_atol=ADAPTER_ATOL)
    assert diff["sft"]["ok"] and diff["dpo"]["ok"], diff


@pytest.fixture(scope="module")
def reference(tiny_base_model: Path, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> Iterator[tuple[Path, dict]]:
    out = tmp_path_factory.mktemp("one-process")
    failed = request.session.testsfailed
    yield out, ddp_check.run(out, tiny_base_model)
    if request.session.testsfailed == failed:  # 110 MB of checkpoints, kept only when a test of the module failed
        shutil.rmtree(out, ignore_errors=True)


def test_two_gloo_ranks_match_one_process(reference, tiny_base_model, tmp_path):
    ref, ref_result = reference
    assert ref_result["sft"]["distributed"]["world_size"] == 1 and len(ref_result["sft"]["losses"]) == 4
    assert len(ref_result["sft"]["eval_losses"]) == 2  # every save_steps = 2: compared like the train losses
    proc = _launch(tmp_path, tiny_base_model, 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    for stage in ("sft", "dpo"):
        # the global batch stayed 4: 2 per rank x 2 ranks x 1 accumulation step, recorded with the backend
        assert result[stage]["distributed"] == {"world_size": 2, "backend": "gloo", "devices": ["cpu:0", "cpu:0"],
                                                "per_device_batch_size": 2, "gradient_accumulation_steps": 1,
                                                "global_batch_size": 4}
        assert result[stage]["tokens"] == ref_result[stage]["tokens"]  # counted over both ranks
    _assert_same_training(ref, tmp_path)
    assert not list((tmp_path / "sft").glob("checkpoint-*/rng_state.pth"))  # one RNG file per rank, written by rank 0
    assert {p.name for p in (tmp_path / "sft" / "checkpoint-2").glob("rng_state_*.pth")} == {"rng_state_0.pth",
                                                                                            "rng_state_1.pth"}


def test_a_killed_rank_resumes_on_any_number_of_processes(reference, tiny_base_model, tmp_path):
    ref, ref_result = reference
    killed = _launch(tmp_path, tiny_base_model, 2, "--kill-at-step", "3")
    assert killed.returncode != 0 and "exitcode  : 17" in killed.stderr, killed.stderr[-3000:]
    assert (tmp_path / "sft" / "checkpoint-2").is_dir() and not (tmp_path / "result.json").exists()
    # the 2-rank checkpoint resumes in one process: the same global batch means the same steps
    resumed = ddp_check.run(tmp_path, tiny_base_model)
    assert resumed["sft"]["resumed_from"].endswith("checkpoint-2")
    assert resumed["sft"]["loss_steps"][-2:] == [3, 4]
    assert resumed["sft"]["losses"][-2:] == pytest.approx(ref_result["sft"]["losses"][-2:], rel=LOSS_RTOL)
    _assert_same_training(ref, tmp_path)  # SFT's adapter and DPO after it are those of the run never killed


def test_two_gloo_ranks_match_one_process_with_batch_rebalance(tiny_base_model, tmp_path):
    """SFT with ``batch_rebalance``, global batch 4: one process splits each step into 2 accumulated micro-batches, 2
    ranks into 1 each, from the same rebalanced partition (it depends on ranks x accumulation = 2 only); steps holding
    a long row (:data:`ddp_check.VARIED_EXAMPLES`) split 1 + 3 rows. Each rank takes its own micro-batch and the
    token-weighted loss over the step's tokens on both ranks keeps the one-process training."""
    ref, got = tmp_path / "one", tmp_path / "two"
    ddp_check.run(ref, tiny_base_model, rebalance=True)
    proc = _launch(got, tiny_base_model, 2, "--batch-rebalance")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((got / "result.json").read_text())
    assert result["sft"]["distributed"]["gradient_accumulation_steps"] == 1
    _assert_same_training(ref, got)

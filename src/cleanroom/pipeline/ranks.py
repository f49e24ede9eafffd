"""Stage 1 on several ranks: rank 0 runs the pipeline; the other ranks join it to generate and to train.

Under ``accelerate launch --num_processes N`` every rank runs ``cleanroom run stage1`` with the same
arguments. Rank 0 runs the stages as one process would and alone writes the run directory (manifests,
records, run.log, the attestation). The other ranks :func:`follow`: they wait for rank 0's word
(``distributed.lead``, a ``broadcast_object_list`` from rank 0), then run their part of that stage and wait
again, until rank 0 says ``done`` (``distributed.finish``):

* SFT and DPO: the same data-parallel trainer on the same rows (``follow_sft`` / ``follow_dpo``: the HF
  Trainer shards the batches, averages the gradients, saves on rank 0);
* baseline, SFT data (when the base model answers), pairs and eval: the same model on the same records,
  generating their share of the batches into part files that rank 0 merges in record order
  (:mod:`cleanroom.pipeline.shards`; ``follow_baseline``, ``follow_sft_data``, ``follow_pairs``,
  ``follow_eval``).

Preflight, the merge proof and the report run on rank 0 alone. A stage that rank 0 skips (done earlier) is
never announced, so the followers skip it too.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from cleanroom import distributed
from cleanroom.artifacts import RunDir
from cleanroom.pipeline.baseline import follow_baseline
from cleanroom.pipeline.common import BudgetMeter, Context, resolve_device
from cleanroom.pipeline.evaluation import follow_eval
from cleanroom.pipeline.pairs import follow_pairs
from cleanroom.pipeline.runlog import disable_progress_bars
from cleanroom.pipeline.sft_data import follow_sft_data
from cleanroom.pipeline.training import follow_dpo, follow_sft


def is_follower() -> bool:
    return distributed.launched() and not distributed.world().is_main


def follow(spec: Any) -> None:
    """Run on a rank other than 0 until rank 0 says ``done``: each announced stage's trainer or share of its
    generation; no stage files (only the part files rank 0 merges)."""

    steps = {"baseline": follow_baseline, "sft_data": follow_sft_data, "sft": follow_sft, "pairs": follow_pairs,
             "dpo": follow_dpo, "eval": follow_eval}
    restore = disable_progress_bars()  # rank 0's bars (or none) are the run's; a follower's would interleave
    try:
        _follow(spec, steps)
    finally:
        for undo in restore:
            undo()


def _follow(spec: Any, steps: dict[str, Any]) -> None:
    while True:
        stage, run_path = distributed.receive_stage()
        if stage == "done":
            return
        distributed.describe(distributed.world())  # rank 0's lead() gathers every rank's device
        if stage not in steps or run_path is None:  # internal: rank 0 only sends what steps holds
            raise AssertionError(f"unknown rank-0 message {(stage, run_path)!r}")
        # the budget is rank 0's to watch (its meter stops the run); a follower's never runs out
        ctx = Context(spec=spec, run=RunDir.open(run_path), device=resolve_device(spec.device),
                      budget=BudgetMeter(spec.budget.price_per_hour), resume=True, progress=False)
        steps[stage](ctx)


def relaunch(num_processes: int, argv: list[str], *, cpu: bool) -> int:
    """``cleanroom <argv>`` again under ``accelerate launch`` on *num_processes* ranks; its exit code."""

    launch, env = distributed.launch_command(num_processes, cpu=cpu)
    return subprocess.run([*launch, "-m", "cleanroom.cli", *argv], env=os.environ | env).returncode


__all__ = ["follow", "is_follower", "relaunch"]

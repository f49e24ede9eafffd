"""Stage 1 on several ranks: rank 0 runs the pipeline; the other ranks join it for SFT and DPO.

Under ``accelerate launch --num_processes N`` every rank runs ``cleanroom run stage1`` with the same
arguments. Rank 0 runs the stages as one process would and alone writes the run directory (manifests,
records, run.log, the attestation). The other ranks :func:`follow`: they wait for rank 0's word
(:func:`lead`, a ``broadcast_object_list`` from rank 0), then run the same data-parallel trainer on the
same rows (``pipeline.training.follow_sft`` / ``follow_dpo``: the HF Trainer shards the batches, averages
the gradients, saves on rank 0), and wait again until rank 0 says ``done`` (:func:`finish`). A stage that
rank 0 skips (done earlier) is never announced, so the followers skip it too. The generation stages run
on rank 0 alone (their sharding over the ranks is not built yet), while the followers wait.
"""

from __future__ import annotations

from typing import Any

from cleanroom import distributed


def _send(message: tuple[str, str | None]) -> None:
    import torch.distributed as dist

    dist.broadcast_object_list([message], src=0)


def _receive() -> tuple[str, str | None]:
    import torch.distributed as dist

    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def lead(ctx: Any, stage: str) -> dict[str, Any]:
    """On rank 0 of several: tell the followers to start *stage* on this run. Returns the world's record for
    the stage's provenance (:func:`cleanroom.distributed.describe`: size, backend, every rank's device)."""
    w = distributed.world()
    if w.world_size > 1:
        ctx.say(f"{stage}: data-parallel over {w.world_size} ranks ({w.backend})")
        _send((stage, str(ctx.run.path)))
    return distributed.describe(w)  # the followers make the same collective call right after receiving


def finish() -> None:
    """On rank 0 of several: the pipeline ended; the followers return."""
    w = distributed.world()
    if w.world_size > 1 and w.is_main:
        _send(("done", None))


def is_follower() -> bool:
    return distributed.launched() and not distributed.world().is_main


def follow(spec: Any) -> None:
    """Run on a rank other than 0 until rank 0 says ``done``: each announced stage's trainer, no files."""
    from cleanroom.artifacts import RunDir
    from cleanroom.pipeline.common import BudgetMeter, Context, resolve_device
    from cleanroom.pipeline.training import follow_dpo, follow_sft

    steps = {"sft": follow_sft, "dpo": follow_dpo}
    while True:
        stage, run_path = _receive()
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
    import os
    import subprocess

    launch, env = distributed.launch_command(num_processes, cpu=cpu)
    return subprocess.run([*launch, "-m", "cleanroom.cli", *argv], env=os.environ | env).returncode


__all__ = ["finish", "follow", "is_follower", "lead", "relaunch"]

"""Several processes through accelerate/torch.distributed: who this rank is, what it owns, when to wait.

cleanroom runs the same recipe under ``accelerate launch --num_processes N`` (NCCL on GPUs, gloo on CPU)
on accelerate's engine, nothing home-made: HF's Trainer wraps the model in DDP, shards the batches and
averages the gradients; this module only answers the questions the stages ask around it.

* :func:`world` -- rank, world size, backend and this rank's device, read from accelerate's
  ``PartialState`` when a launcher started us (``WORLD_SIZE`` > 1), else the one-process world.
* :func:`divide_batch` -- the per-device batch and accumulation that keep the *global* batch
  ``batch_size x N x gradient_accumulation_steps`` equal to the profile's, so a run on N ranks takes the
  same optimizer steps on the same examples as one process (and a checkpoint resumes on any N).
* :func:`whole_global_batches` -- the training rows cut to a whole number of global batches, so that no
  rank's last batch is completed with examples from the start of the epoch (the same cut on any N).
* :func:`shard` -- indices ``rank, rank + N, rank + 2N, ...``: deterministic and balanced (the generation
  stages shard their batches with it, :mod:`cleanroom.pipeline.shards`).
* :func:`on_main` / :func:`barrier` / :func:`share` -- files are written by rank 0 only; the others wait,
  then read; rank 0's word reaches every rank.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from cleanroom.errors import ConfigError
from cleanroom.spec import replace

T = TypeVar("T")
#: How long a collective waits for the other ranks: in Stage 1 the followers wait while rank 0 works alone
#: (preflight, the merge proof, scoring; pipeline.ranks) and rank 0 waits at a merge for the slowest rank's
#: share of the generation, long on a large model; a rank that dies ends the launch sooner (torchrun stops all).
TIMEOUT_S = 24 * 3600


@dataclass(frozen=True, kw_only=True)
class World:
    """This process's place among ``world_size`` ranks (no collective call needed to build it)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def describe(w: World) -> dict[str, Any]:
    """The provenance record: world size, backend (nccl/gloo; None for one process) and every rank's device
    in rank order. A collective call under a launcher: every rank must call it."""
    return {"world_size": w.world_size, "backend": w.backend, "devices": gather_in_order([w.device], w)}


def launched() -> bool:
    """True when a launcher (accelerate launch / torchrun) started more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def use_cpu() -> bool:
    """``ACCELERATE_USE_CPU`` (what ``accelerate launch --cpu`` sets) asks for CPU ranks even beside a GPU."""
    return os.environ.get("ACCELERATE_USE_CPU", "false").lower() in {"1", "true", "yes"}


def launch_command(num_processes: int, *, cpu: bool, port: int | None = None) -> tuple[list[str], dict[str, str]]:
    """The ``accelerate launch`` argv prefix (the script or ``-m module`` follows) and the environment for N ranks.

    accelerate 1.16's ``launch --cpu --num_processes N`` starts ONE process unless an MPI hostfile is given
    (its simple launcher), so CPU ranks go through the torchrun launcher (``--multi_gpu``) with
    ``ACCELERATE_USE_CPU=1``: gloo, one process per rank. ``CLEANROOM_WORLD_SIZE`` lets each rank check
    that it got the world it was launched for (:func:`world` raises otherwise). Without *port* the ranks
    meet on a port that is free now (not torchrun's fixed 29500, which a second launch on the same machine
    would find taken).
    """

    argv = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    if num_processes > 1:
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        argv += ["--multi_gpu", "--main_process_port", str(port)]
    env = {"CLEANROOM_WORLD_SIZE": str(num_processes)}
    if cpu:
        env["ACCELERATE_USE_CPU"] = "1"
    return argv, env


def world() -> World:
    """The current world. Under a launcher this initialises the process group through accelerate's
    ``PartialState`` (gloo on CPU, nccl on CUDA; it also selects this rank's GPU)."""
    if not launched():
        # heavy optional: torch
        import torch

        one = World(device="cuda:0" if torch.cuda.is_available() else "cpu")
        _check_expected(one)
        return one
    # heavy optional: torch
    import torch

    # heavy optional: accelerate
    from accelerate import PartialState  # heavy optional dependency (the `train` extra)

    # cpu=True is what makes accelerate choose gloo (MULTI_CPU); the Trainer asks the same shared state
    # with cpu=True when ACCELERATE_USE_CPU is set, so both must agree on the first call
    state = PartialState(cpu=use_cpu() or not torch.cuda.is_available(), timeout=timedelta(seconds=TIMEOUT_S))
    w = World(world_size=state.num_processes, rank=state.process_index, local_rank=state.local_process_index,
              backend=state.backend, device=str(state.device))
    _check_expected(w)
    return w


def _check_expected(w: World) -> None:
    expected = os.environ.get("CLEANROOM_WORLD_SIZE")
    if expected is not None and int(expected) != w.world_size:
        raise ConfigError(
            f"launched for {expected} processes but this rank sees a world of {w.world_size} "
            f"(WORLD_SIZE={os.environ.get('WORLD_SIZE')}, accelerate backend {w.backend}); on CPU launch with "
            "`accelerate launch --multi_gpu --num_processes N` and ACCELERATE_USE_CPU=1 (accelerate's --cpu "
            "alone starts one process), or use `cleanroom run stage1 --num-processes N`"
        )


def device_map(w: World) -> dict[str, Any] | None:
    """The ``device_map`` that places the whole model on this rank's GPU (``{"": local_rank}``); None on CPU,
    where the model stays where the loader put it and DDP replicates it per process."""
    return {"": w.local_rank} if w.device.startswith("cuda") else None


def divide_batch(train: T, w: World) -> T:
    """*train* (a TrainSpec) with the per-device batch or the accumulation divided by the world size.

    Global batch = ``batch_size x world_size x gradient_accumulation_steps``. The accumulation is divided
    when it can be (the per-device micro-batch, and so its memory, stays as profiled), else the batch size;
    when neither divides, the global batch cannot be kept and that is a ConfigError, never a rounding.
    Every full global batch is then the one-process batch. A final partial one (examples not a multiple of
    the global batch) would not be (accelerate completes it with examples from the start of the epoch), so
    the pipeline trains on :func:`whole_global_batches` in every process.
    """
    n = w.world_size
    if n == 1:
        return train
    batch, accum = train.batch_size, train.gradient_accumulation_steps  # type: ignore[attr-defined]
    if accum % n == 0:
        return replace(train, gradient_accumulation_steps=accum // n)  # type: ignore[type-var]  # a TrainSpec
    if batch % n == 0:
        return replace(train, batch_size=batch // n)  # type: ignore[type-var]
    raise ConfigError(
        f"global batch {batch} x {accum} (batch_size x gradient_accumulation_steps) cannot be split over "
        f"{n} processes: neither {batch} nor {accum} is divisible by {n}; choose a batch_size or "
        f"gradient_accumulation_steps that is a multiple of {n}, or launch a number of processes that divides one"
    )


def whole_global_batches(rows: Sequence[T], train: Any) -> list[T]:
    """The first ``len(rows) - len(rows) mod G`` of *rows*, G the global batch of *train* (the profile's
    TrainSpec, before :func:`divide_batch`): every optimizer step then takes a full global batch, the same
    examples on any number of ranks.

    Why cut, and why here. A last partial global batch cannot be one process's on N ranks: accelerate
    completes a short last batch with examples from the start of the epoch (``even_batches``) so that every
    rank takes the step, and the step then trains on examples one process does not (measured on the tiny
    profile, 43 SFT examples in batches of 8: steps 1-5 agree to 1e-6, step 6 trains on 7 examples on 2 ranks
    against 3). The library's other settings do not give one process's step either:
    ``even_batches=False`` leaves a rank one step short, and DDP under the Trainer then waits for it forever;
    ``dataloader_drop_last`` cuts per micro-batch (so on N ranks with the accumulation divided it is not the
    cut of one process) and also empties an evaluation set smaller than one batch; the Trainer's
    ``batch_rebalance`` sampler keeps each step's examples but splits them unevenly by length, while DPO's
    loss is a mean per micro-batch, and its order ignores the run's seed. The cut is applied in every
    process, one included, so all take the same ``len(rows) // G`` steps per epoch (the Trainer shuffles
    what is kept; which rows are cut is fixed: the last ones in file order). Fewer rows than one global
    batch is a ConfigError, never a step on fewer examples.
    """
    g = train.batch_size * train.gradient_accumulation_steps
    if len(rows) < g:
        raise ConfigError(
            f"{len(rows)} training examples make no full global batch of {g} (batch_size {train.batch_size} x "
            f"gradient_accumulation_steps {train.gradient_accumulation_steps}); lower batch_size or "
            "gradient_accumulation_steps, or provide more examples"
        )
    return list(rows[: len(rows) - len(rows) % g])


def batch_record(train: Any, w: World) -> dict[str, int]:
    """What provenance records of the batch: per-device size, accumulation, ranks and their product."""
    return {"per_device_batch_size": train.batch_size, "gradient_accumulation_steps": train.gradient_accumulation_steps,
            "world_size": w.world_size,
            "global_batch_size": train.batch_size * w.world_size * train.gradient_accumulation_steps}


def shard(n_items: int, w: World) -> range:
    """The indices this rank owns: ``rank, rank + N, ...`` (every index exactly once over the ranks)."""
    return range(w.rank, n_items, w.world_size)


def barrier(w: World) -> None:
    """Wait until every rank gets here (a no-op for one process)."""
    if w.world_size > 1:
        # heavy optional: torch
        import torch.distributed as dist

        dist.barrier()


def on_main(w: World, fn: Callable[[], object]) -> None:
    """Run *fn* on rank 0 only (files are written once), then let every rank pass the barrier together."""
    if w.is_main:
        fn()
    barrier(w)


def share(value: T | None, w: World) -> T:
    """Rank 0's *value* on every rank (a broadcast; the other ranks pass None). One process: *value* itself."""
    if w.world_size > 1:
        # heavy optional: torch
        import torch.distributed as dist

        box: list[Any] = [value if w.is_main else None]
        dist.broadcast_object_list(box, src=0)
        value = box[0]
    if value is None:  # internal: rank 0 always has something to say
        raise AssertionError("share: rank 0 sent None")
    return value


def sum_across(value: int, w: World) -> int:
    """The sum of an integer over all ranks (e.g. tokens each rank's collator saw)."""
    if w.world_size == 1:
        return value
    # heavy optional: accelerate
    from accelerate.utils import gather_object

    return int(sum(gather_object([value])))


def gather_in_order(items: Sequence[T], w: World) -> list[T]:
    """Every rank's *items* (picklable), concatenated in rank order, on every rank."""
    if w.world_size == 1:
        return list(items)
    # heavy optional: accelerate
    from accelerate.utils import gather_object

    return list(gather_object(list(items)))



def _send(message: tuple[str, str | None]) -> None:
    share(message, world())


def receive_stage() -> tuple[str, str | None]:
    return share(None, world())


def lead(ctx: Any, stage: str, *, work: str = "data-parallel") -> dict[str, Any]:
    """On rank 0 of several (``ctx``: the pipeline's stage context, its ``say`` and ``run.path``): tell the
    followers to start *stage* on this run (*work* says how it is spread, for the log line). Returns the
    world's record for the stage's provenance (:func:`describe`: size, backend, every rank's device)."""
    w = world()
    if w.world_size > 1:
        ctx.say(f"{stage}: {work} over {w.world_size} ranks ({w.backend})")
        _send((stage, str(ctx.run.path)))
    return describe(w)  # the followers make the same collective call right after receiving


def finish() -> None:
    """On rank 0 of several: the pipeline ended; the followers return."""
    w = world()
    if w.world_size > 1 and w.is_main:
        _send(("done", None))


def shutdown() -> None:
    """Destroy this rank's process group at a clean end (every rank, after :func:`finish` / the follower's return).

    Left to the interpreter's exit, gloo's threads can be destroyed while still joinable: ``terminate called
    without an active exception`` and exit code -6 on rank 0 of a run that had finished (seen once in CI)."""
    if world().world_size > 1:
        # heavy optional: torch
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["finish", "shutdown", "lead", "receive_stage", "World", "barrier", "batch_record", "describe", "device_map", "divide_batch", "gather_in_order", "launched", "on_main",
           "shard", "share", "sum_across", "whole_global_batches", "world"]

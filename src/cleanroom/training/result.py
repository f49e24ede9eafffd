"""What a training run returns, and how its figures are measured.

``tokens_per_s`` counts real (non-pad) tokens that passed the guarded collator, divided by the
wall-clock seconds of ``trainer.train()``. ``peak_mem_bytes`` is ``torch.cuda.max_memory_allocated``
on CUDA (``peak_mem_kind="cuda_max_allocated"``; the figure the memory model is calibrated against)
and the process's peak resident set size elsewhere (``"cpu_max_rss"``, an upper bound that includes
the Python process itself).
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    """One SFT or DPO run. ``losses[i]`` is the training loss logged at step ``loss_steps[i]``."""

    adapter_dir: Path
    losses: tuple[float, ...]
    steps: int
    seconds: float
    tokens_per_s: float
    peak_mem_bytes: int
    peak_mem_kind: str = "cpu_max_rss"
    loss_steps: tuple[int, ...] = ()
    eval_losses: tuple[float, ...] = ()
    tokens: int = 0
    stopped_reason: str | None = None
    resumed_from: str | None = None
    step0_loss: float | None = None
    step0_margin: float | None = None
    #: Each speed lever's setting and its reason (``TrainSpec.levers``), plus what a lever measured (DPO's
    #: precomputed reference: the log-probs' sha256 and the seconds their computation took).
    levers: dict[str, Any] = field(default_factory=dict)
    #: World size, backend, per-rank devices and the batch split (``cleanroom.distributed``); one process: size 1.
    distributed: dict[str, Any] = field(default_factory=dict)
    #: The trained model (PEFT-wrapped), for merge_and_verify and generation; not part of the record.
    model: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for provenance and the report."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "model"}
        out["adapter_dir"] = str(self.adapter_dir)
        out["losses"] = list(self.losses)
        out["loss_steps"] = list(self.loss_steps)
        out["eval_losses"] = list(self.eval_losses)
        return out


def reset_peak_memory() -> None:
    import torch  # heavy optional: torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> tuple[int, str]:
    """(bytes, kind): CUDA peak allocated when CUDA is in use, else the process's peak RSS."""
    import torch  # heavy optional: torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated()), "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "cpu_max_rss"


def logged_losses(log_history: list[dict[str, Any]]) -> tuple[tuple[float, ...], tuple[int, ...], tuple[float, ...]]:
    """(train losses, their steps, eval losses) from ``trainer.state.log_history``."""
    train = [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e and "step" in e]
    evals = tuple(float(e["eval_loss"]) for e in log_history if "eval_loss" in e)
    return tuple(v for _, v in train), tuple(s for s, _ in train), evals

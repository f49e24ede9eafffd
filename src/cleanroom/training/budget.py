"""Stop training gracefully, at a checkpoint, when the run's budget is spent.

The pipeline owns the budget (``max_cost_usd`` / ``max_hours``); it hands in a callable that returns
``None`` while there is budget left and a reason string once there is not. The callback asks after
every optimizer step; on a reason it makes the trainer save a checkpoint and stop, so ``--resume``
continues from exactly there. The reason ends up in ``TrainResult.stopped_reason``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback


class BudgetCallback(TrainerCallback):
    """``should_stop() -> str | None``; a string stops the run after saving a checkpoint."""

    def __init__(self, should_stop: Callable[[], str | None]) -> None:
        self.should_stop = should_stop
        self.reason: str | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        reason = self.should_stop()
        if reason:
            self.reason = f"budget exhausted at step {state.global_step}: {reason}"
            control.should_save = True
            control.should_training_stop = True
        return control


__all__ = ["BudgetCallback"]

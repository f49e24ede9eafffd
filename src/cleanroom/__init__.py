"""cleanroom: a test-first verification harness for post-training open base models.

The public surface is re-exported here; everything else may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cleanroom._version import __version__
from cleanroom.errors import (
    BudgetExceededError,
    CleanroomError,
    ConfigError,
    ContaminationError,
    DependencyError,
    GateError,
    InputError,
    MissingFileError,
    ProvenanceError,
    StatisticsError,
)

if TYPE_CHECKING:
    from cleanroom.loader import CleanModelLoader

# Heavy names are resolved lazily so ``import cleanroom`` never imports torch.
_LAZY = {"CleanModelLoader": "cleanroom.loader", "capture_provenance": "cleanroom.provenance", "ProvenanceRecord": "cleanroom.provenance", "RunDir": "cleanroom.artifacts", "verify_run": "cleanroom.verify", "trace_record": "cleanroom.verify", "LoraSpec": "cleanroom.training", "TrainSpec": "cleanroom.training", "train_sft": "cleanroom.training", "train_dpo": "cleanroom.training", "merge_and_verify": "cleanroom.training", "estimate_peak_memory": "cleanroom.memory", "project_cost": "cleanroom.cost", "run_gates": "cleanroom.code_gates"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cleanroom' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "run_gates",
    "BudgetExceededError",
    "CleanModelLoader",
    "CleanroomError",
    "ConfigError",
    "ContaminationError",
    "DependencyError",
    "GateError",
    "InputError",
    "MissingFileError",
    "ProvenanceError",
    "ProvenanceRecord",
    "RunDir",
    "StatisticsError",
    "__version__",
    "capture_provenance",
    "trace_record",
    "verify_run",
]

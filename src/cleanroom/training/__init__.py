"""SFT and DPO over TRL + PEFT, LoRA merge with proof, and the optional Unsloth backend.

Importing this package does not import torch: the trainers import their heavy dependencies when
called.
"""

from __future__ import annotations

from cleanroom.training.dpo import train_dpo
from cleanroom.training.merge import merge_and_verify
from cleanroom.training.result import TrainResult
from cleanroom.training.sft import train_sft
from cleanroom.training.specs import ALL_PROJECTIONS, LoraSpec, TrainSpec

__all__ = ["ALL_PROJECTIONS", "LoraSpec", "TrainResult", "TrainSpec", "merge_and_verify", "train_dpo", "train_sft"]

"""Fixtures for the training tests: a freshly loaded tiny base (each test mutates it) and small specs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cleanroom.training import LoraSpec, TrainSpec

#: One learnable example repeated: the loss on it must fall within a few steps.
LEARNABLE = [{"prompt": "Repeat after me: the cat sat on the mat.\nAnswer:", "completion": " the cat sat on the mat."}] * 8
#: Four lengths (prompt + completion + EOS), so a padded batch has pad to skip and a packed row has restarts.
VARIED = [
    {"prompt": "Repeat: the cat sat.\nAnswer:", "completion": " the cat sat."},
    {"prompt": "Q: name three colours and a number between one and ten, please.\nA:", "completion": " red green blue 7"},
    {"prompt": "Say hi.\n", "completion": " hi there, how are you doing today on this fine morning?"},
    {"prompt": "Count:\n", "completion": " one two three four"},
]


@pytest.fixture
def load_tiny(tiny_base_model: Path) -> Callable[..., tuple[Any, Any]]:
    """Load the tiny base through the clean loader (fp32 on CPU, no probe: fast); call once per model."""
    from cleanroom.loader import CleanModelLoader

    def load(**kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("dtype", None if kwargs.get("quantization") else "float32")
        model, tokenizer, _ = CleanModelLoader(tiny_base_model, probe=False, **kwargs).load()
        return model, tokenizer

    return load


@pytest.fixture
def learnable() -> list[dict[str, str]]:
    return list(LEARNABLE)


@pytest.fixture
def varied() -> list[dict[str, str]]:
    return list(VARIED)


@pytest.fixture
def lora() -> LoraSpec:
    return LoraSpec(r=8, alpha=16)


@pytest.fixture
def spec() -> Callable[..., TrainSpec]:
    """A small CPU TrainSpec; keyword overrides replace fields."""

    def make(**overrides: Any) -> TrainSpec:
        base: dict[str, Any] = dict(max_steps=4, learning_rate=5e-3, batch_size=2, max_length=64, save_steps=2,
                                    gradient_checkpointing=False, precision="fp32", seed=3407)
        base.update(overrides)
        return TrainSpec(**base)

    return make

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


@pytest.fixture(scope="session")
def _tiny_loads() -> dict[tuple, tuple[Any, Any]]:
    """Pristine (model, tokenizer) pairs the clean loader returned, by load arguments: never handed out."""
    return {}


@pytest.fixture
def load_tiny(tiny_base_model: Path, _tiny_loads: dict[tuple, tuple[Any, Any]]) -> Callable[..., tuple[Any, Any]]:
    """Load the tiny base through the clean loader (fp32 on CPU, no probe: fast); call once per model.

    Each call returns a fresh model and tokenizer: a deep copy of what the clean loader returned the first time
    in this session for the same arguments (the tokenizer's load and sentinel checks are ~2.5 s, its copy ~1 s;
    the training tests change the copies, never the loader's result). A quantized load is not copied (its 4-bit
    parameters carry quantization state): it goes through the loader on every call.
    """
    import copy

    from cleanroom.loader import CleanModelLoader

    def load(**kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("dtype", None if kwargs.get("quantization") else "float32")
        if kwargs.get("quantization"):
            model, tokenizer, _ = CleanModelLoader(tiny_base_model, probe=False, **kwargs).load()
            return model, tokenizer
        key = tuple(sorted(kwargs.items()))
        if key not in _tiny_loads:
            model, tokenizer, _ = CleanModelLoader(tiny_base_model, probe=False, **kwargs).load()
            _tiny_loads[key] = (model, tokenizer)
        return copy.deepcopy(_tiny_loads[key])

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

"""Which training backend a run uses: ``peft``, ``unsloth``, or ``auto`` resolved once per run.

``auto`` is Unsloth when the device is CUDA, the quantization is one Unsloth loads (nf4 or none) and
``unsloth`` imports (:func:`cleanroom.training.unsloth_backend.unsloth_available`); otherwise PEFT.
The model name is never changed by the choice (Unsloth is asked for the exact name or path, and a
swapped repository is refused by ``load_unsloth``). The choice and its reason are returned so the
caller records them (preflight's results and provenance, the run log). An explicit ``unsloth`` is
not resolved here: where it cannot run, the SFT stage raises with the install hint.
"""

from __future__ import annotations

from typing import NamedTuple

from cleanroom.errors import ConfigError
from cleanroom.training import unsloth_backend

BACKENDS = ("peft", "unsloth", "auto")


class BackendChoice(NamedTuple):
    """The backend a run trains with, what was asked for, and why."""

    backend: str
    requested: str
    reason: str


def resolve_backend(requested: str, *, device: str, quantization: str | None) -> BackendChoice:
    """``auto`` → ``unsloth`` if CUDA, nf4/no quantization and unsloth imports, else ``peft``; others as given."""
    if requested not in BACKENDS:
        raise ConfigError(f"backend = {requested!r} is invalid; allowed: {' | '.join(BACKENDS)}")
    if requested != "auto":
        return BackendChoice(requested, requested, "configured")
    if device != "cuda":
        return BackendChoice("peft", requested, f"auto: device is {device}, unsloth needs CUDA")
    if quantization not in (None, "nf4"):
        return BackendChoice("peft", requested, f"auto: unsloth has no {quantization} path")
    reason = unsloth_backend.unsloth_available()
    if reason is not None:
        return BackendChoice("peft", requested, f"auto: {reason}")
    return BackendChoice("unsloth", requested, "auto: CUDA and unsloth import")


__all__ = ["BACKENDS", "BackendChoice", "resolve_backend"]

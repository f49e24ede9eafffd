"""Engine choice: which generation engine serves a request on a model's device and precision.

``generation.engine`` names one of :data:`ENGINES`; :func:`choose_engine` turns the request into the engine
:func:`cleanroom.generation.generate` runs and a one-line reason, which goes into the run log and the stage
provenance. ``auto`` picks the fastest engine that supports the requested settings on the model's device
and precision; a named engine is taken as asked, except ``paged`` with sampling, which is refused
(transformers' continuous batching cannot seed per record).
"""

from __future__ import annotations

from typing import Any

from cleanroom.errors import ConfigError

ENGINES = ("auto", "hf", "static", "paged")


def _device_and_precision(model: Any) -> tuple[str, str]:
    param = next(model.parameters())
    quant = getattr(getattr(model, "config", None), "quantization_config", None)
    if quant is not None:
        q = quant if isinstance(quant, dict) else quant.to_dict()
        precision = "nf4" if q.get("load_in_4bit") else "int8" if q.get("load_in_8bit") else str(q.get("quant_method"))
    else:
        precision = str(param.dtype).replace("torch.", "")
    return param.device.type, precision


def choose_engine(requested: str, model: Any, *, sampling: bool) -> tuple[str, str]:
    """``(engine, reason)`` for a request; ``auto`` picks the fastest engine that supports the settings.

    The rule comes from ``benchmarks/bench_generation.py`` on the H200 (docs/generation.md): on CUDA the
    static cache with compiled decode is the fastest engine, and it samples with per-record seeds (paged ran
    below it at batch 64 and cannot); on the CPU compiling costs more than a short run saves and the static
    cache copies more, so plain ``generate`` is fastest there.
    """
    if requested not in ENGINES:
        raise ConfigError(f"generation.engine={requested!r}: expected one of {ENGINES}")
    device, precision = _device_and_precision(model)
    if requested == "paged" and sampling:
        raise ConfigError(
            "generation.engine=paged cannot sample with per-record seeds: transformers' continuous batching draws "
            "every request's tokens from one shared generator, so a record's text would depend on its neighbours; "
            "use engine=static or hf, or temperature=0"
        )
    if requested != "auto":
        return requested, f"requested (generation.engine={requested}) on {device}/{precision}"
    if device == "cuda":
        return "static", f"auto on cuda/{precision}: static KV cache with compiled decode, bucketed shapes"
    return "hf", f"auto on {device}/{precision}: plain generate (compiling costs more than it saves on {device})"


__all__ = ["ENGINES", "choose_engine"]

"""The form the loader asks transformers to hold a base model's weights in: bitsandbytes' 4-bit (nf4) or 8-bit
quantization or none, the dtype, and a GGUF file always dequantized to a dense model.

Every choice comes from :class:`~cleanroom.loader.CleanModelLoader`'s arguments, so it lands in provenance; a
quantization this machine cannot do is a :class:`ConfigError` with the install hint, never a silent fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cleanroom.errors import ConfigError

QUANTIZATIONS = (None, "nf4", "int8")


def quantization_config(path: Path, quantization: str | None, gguf_file: str | None) -> Any:
    """bitsandbytes' config for *quantization* of the model at *path* (None for none)."""
    if quantization is None:
        return None
    try:
        # heavy optional: bitsandbytes
        import bitsandbytes  # noqa: F401
        import torch  # heavy optional: torch
        from transformers import BitsAndBytesConfig  # heavy optional: transformers
    except ImportError as exc:
        raise ConfigError(
            f"{path}: quantization={quantization!r} is not available on this machine ({exc}); "
            "pip install bitsandbytes, or pass quantization=None"
        ) from exc
    if gguf_file is not None:
        raise ConfigError(f"{gguf_file}: GGUF weights are already quantized; pass quantization=None")
    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
    )


def torch_dtype(dtype: Any, quantization: str | None) -> Any:
    """The ``dtype`` for ``from_pretrained``: *dtype* (a name or a torch.dtype), else the checkpoint's own
    (``"auto"``), else, quantized, the compute dtype (bfloat16 on CUDA, float32 on CPU)."""
    import torch  # heavy optional: torch

    if dtype is None:
        return "auto" if quantization is None else (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def gguf_dense_kwargs() -> dict[str, Any]:
    """Ask transformers for a dense (dequantized) model from a GGUF file.

    Newer transformers (5.2x) keep GGUF weights packed when a matmul kernel is installed; a packed
    model can neither train LoRA nor be compared across machines, so the loader always asks for the
    dense form. Older releases have no ``GgufConfig`` and always dequantize.
    """
    try:
        # heavy optional: transformers
        from transformers import GgufConfig  # type: ignore[attr-defined]
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def drop_gguf_quantizer(model: Any, gguf_path: Path) -> None:
    """Detach the GGUF quantizer from a model whose weights were all dequantized at load.

    transformers leaves ``hf_quantizer`` (method GGUF, not trainable) on the dense model, and its
    Trainer then refuses to fine-tune it. With every weight a plain tensor the quantizer describes
    nothing real, so it goes; a model that still holds packed GGUF blocks is refused instead.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    if getattr(quantizer, "packed_modules", None):
        raise ConfigError(
            f"{gguf_path}: transformers kept the GGUF weights packed ({len(quantizer.packed_modules)} modules); "
            "cleanroom needs a dense model to train and compare: upgrade transformers or convert the GGUF to safetensors"
        )
    quantizer.remove_quantization_config(model)


__all__ = ["QUANTIZATIONS", "drop_gguf_quantizer", "gguf_dense_kwargs", "quantization_config", "torch_dtype"]

"""Dense decoding of 4-bit models: each bitsandbytes 4-bit layer dequantized once for generation.

For more than one row, bitsandbytes' ``Linear4bit`` dequantizes the whole weight to its compute dtype and
multiplies (``matmul_4bit``): every decode step of a batch reads the packed weight, writes and reads a dense
copy. :func:`dequantized` swaps each 4-bit layer (inside peft's LoRA wrappers too) for a dense copy for the
duration of a generation call, made once and kept on the model; :func:`dense_decoding` decides whether the
copies fit in free memory and says why. The static engine of :mod:`cleanroom.generation` uses both
(docs/generation.md: on the H200 the 7B nf4 decode runs at bfloat16 speed).
"""

from __future__ import annotations

import contextlib
import copy
import os
import weakref
from collections.abc import Iterator
from typing import Any

#: memory kept free beside the dense weights and the static cache (activations, compiled graphs, allocator slack)
DENSE_HEADROOM_BYTES = 4 * 2**30


def _linear4bit_modules(model: Any) -> list[tuple[Any, str, Any]]:
    """``(parent, attribute, layer)`` of every bitsandbytes 4-bit linear layer (inside peft's LoRA wrappers too)."""
    try:
        import bitsandbytes as bnb  # heavy optional: bitsandbytes (only 4-bit models reach here)
    except ImportError:
        return []
    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if isinstance(child, bnb.nn.Linear4bit)]


def dense_decoding(model: Any, *, prompt_width: int, max_new_tokens: int, batch_size: int) -> tuple[bool, str]:
    """Whether the static engine decodes a 4-bit model with its weights dequantized once, and why.

    For more than one row, bitsandbytes' 4-bit linear layer dequantizes the whole weight to its compute dtype
    and multiplies (``matmul_4bit``): every decode step of a batch reads the packed weight, writes and reads
    a dense copy. Dequantizing once before decoding gives the same products (the same dense weight, the
    same matmul) and leaves the step reading dense weights only; on the H200 the 7B nf4 decode then runs
    at bfloat16 speed (docs/generation.md). It costs the dense copy's memory for the call, so it is used
    only when ``dense bytes + static cache + DENSE_HEADROOM_BYTES`` fits in the device's free memory;
    otherwise the 4-bit weights decode as they are, and the reason says so.
    """
    import torch  # heavy optional: torch

    layers = _linear4bit_modules(model)
    if not layers:
        return False, ""
    made = model.__dict__.get(DENSE_ATTR)
    if made is not None and all(layer in made for _, _, layer in layers):
        return True, f"{len(layers)} 4-bit layers decode with the dense copies made by an earlier call"
    dtype = layers[0][2].compute_dtype or torch.bfloat16
    dense = sum(layer.out_features * layer.in_features for _, _, layer in layers) * dtype.itemsize
    cfg: Any = model.config
    text: Any = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    heads = getattr(text, "num_key_value_heads", None) or getattr(text, "num_attention_heads", 1)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    cache = 2 * text.num_hidden_layers * heads * head_dim * (prompt_width + max_new_tokens) * batch_size * dtype.itemsize
    device = next(model.parameters()).device
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    need = dense + cache + DENSE_HEADROOM_BYTES
    gib = 2**30
    if need > free:
        return False, (f"4-bit weights kept: a dense {str(dtype).replace('torch.', '')} copy ({dense / gib:.1f} GiB) "
                       f"+ cache ({cache / gib:.1f} GiB) + headroom does not fit in {free / gib:.1f} GiB free")
    return True, (f"{len(layers)} 4-bit layers dequantized once for decoding ({dense / gib:.1f} GiB "
                  f"{str(dtype).replace('torch.', '')}, {free / gib:.1f} GiB free)")


#: attribute of a model holding its dense copies, ``{4-bit layer: dense layer}`` (weak keys), made once, reused by every call
DENSE_ATTR = "_cleanroom_dense_layers"


def _dense_layer(layer: Any) -> Any:
    """A dense layer computing what ``bnb.nn.Linear4bit.forward`` computes for a batch: the input cast to the
    compute dtype, ``linear`` with the dequantized weight and the bias, cast back."""
    import bitsandbytes.functional as bnbf  # heavy optional: bitsandbytes
    import torch  # heavy optional: torch

    # heavy optional: bitsandbytes
    from bitsandbytes.nn.modules import (
        fix_4bit_weight_quant_state_from_module,  # heavy optional: bitsandbytes
    )

    class DenseFrom4bit(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            fix_4bit_weight_quant_state_from_module(layer)
            state = layer.weight.quant_state
            self.compute = layer.compute_dtype or state.dtype
            data = layer.weight.data
            if getattr(state, "packing_format_for_cpu", False):  # bitsandbytes repacks 4-bit weights on some CPUs
                # its inverse rewrites the state it is given: unpack a copy, the layer keeps its own
                data, state = bnbf._convert_weight_packed_for_cpu_inverse(data, copy.deepcopy(state))
            self.weight = torch.nn.Parameter(bnbf.dequantize_4bit(data, state).to(self.compute), requires_grad=False)
            self.bias = None if layer.bias is None else torch.nn.Parameter(
                layer.bias.detach().to(self.compute), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.linear(x.to(self.compute), self.weight, self.bias).to(x.dtype)

    return DenseFrom4bit()


@contextlib.contextmanager
def dequantized(model: Any, *, enabled: bool) -> Iterator[None]:
    """Swap every 4-bit linear layer for its dense copy for the duration of the call; restore them after.

    The dense copies are made on the first call and kept on the model (:data:`DENSE_ATTR`; the base
    weights of a QLoRA model are frozen, so they never go stale): the same module objects come back on every
    call, so the compiled decode step is reused instead of recompiled per call. LoRA wrappers keep working
    (they call their ``base_layer``); the 4-bit layers themselves are untouched and come back.
    """
    if not enabled:
        yield
        return
    # keyed by the 4-bit layer itself, weakly: a layer replaced later (a merge, an unload) never finds the copy
    # of the one it replaced, as an id() key reused by a new object could
    cache: weakref.WeakKeyDictionary[Any, Any] = model.__dict__.setdefault(DENSE_ATTR, weakref.WeakKeyDictionary())
    swapped = []
    try:
        for parent, name, layer in _linear4bit_modules(model):
            if layer not in cache:
                cache[layer] = _dense_layer(layer)
            setattr(parent, name, cache[layer])
            swapped.append((parent, name, layer))
        yield
    finally:
        for parent, name, layer in reversed(swapped):
            setattr(parent, name, layer)


def release_dense(model: Any) -> None:
    """Free the dense copies :func:`generate` keeps on a 4-bit model (before training it, or to save memory)."""
    model.__dict__.pop(DENSE_ATTR, None)
    import torch  # heavy optional: torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = ["DENSE_ATTR", "DENSE_HEADROOM_BYTES", "dense_decoding", "dequantized", "release_dense"]

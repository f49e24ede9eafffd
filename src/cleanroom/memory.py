"""Peak GPU memory of LoRA / QLoRA training, estimated from a model's config: will it fit?

The estimate is a sum of named parts (all in bytes, ``b`` = batch size, ``s`` = sequence length,
``h`` = hidden size, ``i`` = intermediate size, ``L`` = layers, ``d_kv`` = key/value width =
``num_key_value_heads * h / num_attention_heads``, ``V`` = vocabulary):

* ``weights``: decoder linear weights ``P_lin = L * (2 h^2 + 2 h d_kv + 3 h i)`` at
  ``WEIGHT_BYTES[quantization]`` bytes each. nf4 is 4 bits = 0.5 byte plus the block scales: one
  8-bit absmax per 64 weights (double quantization) and one fp32 scale per 256 of those,
  ``0.5 + 1/64 + 4/(64*256) = 0.51587`` bytes/param. int8 (LLM.int8) is 1 byte plus an fp32 scale
  per output row (``4 / h`` bytes/param, taken as ``4 / h``). Embeddings (``V h``) and an untied
  ``lm_head`` (``V h``), norms (``(2 L + 1) h``) and q/k/v biases (``L (h + 2 d_kv)``) are bf16, as
  TRL's trainers and ``TrainSpec``'s default leave them; with ``kbit_fp32_upcast=True`` (the TrainSpec
  lever) on a quantized base they are fp32 (``KBIT_HALF_BYTES`` = 4): PEFT's
  ``prepare_model_for_kbit_training`` upcasts every non-quantized parameter to fp32 before training.
* ``lora``: adapter parameters ``N = L * r * sum_{targets} (in + out)`` times
  ``param + grad + 2 AdamW moments`` bytes: fp32 (4+4+8 = 16 B) on a bf16 base, bf16 (2+2+4 = 8 B) on a
  quantized base (TRL casts QLoRA adapters to bf16).
* ``activations``: saved tensors for the backward pass, bf16. Per token and layer, without
  checkpointing: ``ACT_H_BYTES * h + ACT_I_BYTES * i + ACT_KV_BYTES * d_kv`` (norm inputs/outputs,
  q/k/v/o inputs and outputs, the SwiGLU gate/up/act/product tensors; flash/SDPA attention stores no
  ``s^2`` matrix), times ``b s L``. With gradient checkpointing only each layer's input is kept
  (``2 h`` bytes per token and layer) plus one layer's full activations during its recomputation.
* ``logits``: with ``chunked_logits`` (TRL >= 1.16's SFT trainer: a fused LM head computes the
  per-token log-probabilities ``LOGIT_CHUNK`` = 32768 vocabulary columns at a time, never the full
  logits; its DPO trainer does the same) a chunk of ``b s * min(V, LOGIT_CHUNK)`` values in the LM head's
  dtype (4 bytes after the fp32 upcast, else 2). With gradient checkpointing the chunk and a layer's
  recomputation are not live together (the chunk is freed once the loss is formed, before the backward
  recomputes the last layer), so the peak holds the larger of the two: ``logits`` is the chunk's excess
  over one layer's activations (0 when the layer is larger, as at 7B). Otherwise (a trainer that
  materialises them) ``b s V * LOGITS_BYTES`` (bf16 logits + their fp32 upcast for the loss). A DPO step
  adds the reference forward: :func:`estimate_dpo_peak_memory`.
* ``dequant``: a quantized layer is dequantized to bf16 one matrix at a time: ``2 h i`` bytes transient.
* ``cuda_context``: CUDA context, cuBLAS workspace and allocator slack, ``CUDA_CONTEXT_BYTES``.

``MemoryEstimate.allocated_bytes`` (everything but the context) is what
``torch.cuda.max_memory_allocated`` measures; ``total_bytes`` is what must fit on the device. Every
constant lives at the top of this module so calibration against measured peaks changes one place.

Calibration (GPU gate check 8, ``benchmarks/bench_memory_model.py``; NVIDIA H200, torch 2.11,
transformers 5.17, TRL 1.16, bitsandbytes 0.50.2; nf4, r=64 on all projections, gradient
checkpointing, seq 512; measured ``max_memory_allocated`` minus what was allocated before the load).
With the fp32 upcast (``kbit_fp32_upcast=True``, the default until session 16) measured in session 13;
without it (TrainSpec's default since) in session 16. The estimates are this model's:

======== ===== ================ ===================== ================ =====================
arch     batch upcast: measured estimate              bf16: measured   estimate
======== ===== ================ ===================== ================ =====================
0.5B     1     1.129            1.033 (-8.5%)         0.818            0.748 (-8.6%)
0.5B     4     1.306            1.282 (-1.9%)         0.852            0.903 (+6.0%)
1.5B     1     2.241            2.179 (-2.8%)         1.803            1.728 (-4.2%)
1.5B     4     2.733            2.489 (-8.9%)         1.923            1.990 (+3.5%)
7B       1     8.797            8.723 (-0.8%)         6.685            6.692 (+0.1%)
7B       4     9.907            9.312 (-6.0%)         7.084            7.281 (+2.8%)
======== ===== ================ ===================== ================ =====================

The model before calibration (bf16 embeddings, full ``b s V`` logits) was off by +100% (0.5B, batch 4)
to -19% (7B, batch 1): the embeddings' fp32 upcast and TRL's chunked LM head were missing. Without the
upcast, summing the LM head's chunk (then taken as fp32) with a layer's recomputation overestimated the
bf16 path by up to +33% (0.5B, batch 4): the chunk is in the head's dtype and is freed before the backward.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import ConfigError

GIB = 1024**3
#: bytes per decoder linear weight by quantization (see module docstring for the nf4/int8 overheads)
WEIGHT_BYTES = {"bf16": 2.0, None: 2.0, "nf4": 0.5 + 1 / 64 + 4 / (64 * 256), "int8": 1.0}
#: bytes per element of parameters kept in 16 bits (embeddings, lm_head, norms, biases)
HALF_BYTES = 2.0
#: per LoRA parameter: param + grad + AdamW first and second moments
LORA_STATE_BYTES = {"fp32": 4 + 4 + 8, "bf16": 2 + 2 + 4}
#: activation bytes per token and layer: ACT_H * h + ACT_I * i + ACT_KV * d_kv (bf16 tensors)
ACT_H_BYTES = 2 * 8  # ln1 in/out, q-in, attn out, o out, ln2 in/out, residual  (8 tensors of width h)
ACT_I_BYTES = 2 * 4  # gate out, up out, act(gate), act(gate)*up              (4 tensors of width i)
ACT_KV_BYTES = 2 * 2  # k and v outputs                                         (2 tensors of width d_kv)
CHECKPOINT_BYTES_PER_H = 2  # the bf16 layer input kept per token and layer under gradient checkpointing
LOGITS_BYTES = 2 + 4  # bf16 logits + fp32 copy for the cross-entropy (trainers that materialise the logits)
#: TRL's fused LM head: log-probabilities over this many vocabulary columns at a time (in the head's dtype)
LOGIT_CHUNK = 32768
#: non-quantized parameters after ``prepare_model_for_kbit_training`` (upcast to fp32)
KBIT_HALF_BYTES = 4.0
CUDA_CONTEXT_BYTES = int(0.75 * GIB)
#: bytes of the two AdamW moments per LoRA parameter on disk (0: the parameter's own dtype, twice)
OPTIMIZER_STATE_BYTES = {"adamw_torch": 0, "adamw_torch_fused": 0, "adamw_8bit": 2, "paged_adamw_8bit": 2,
                         "paged_adamw_32bit": 8}
#: per checkpoint besides adapter and optimizer: tokenizer files (~11 MB for Qwen2.5), scheduler, RNG, state
CHECKPOINT_FIXED_BYTES = 32 * 2**20
QUANTIZATIONS = ("bf16", "nf4", "int8", None)
OPTIMIZERS = ("adamw",)

_ARCH_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "vocab_size")
#: Qwen2.5 base configurations (from each repository's config.json): one row per model, the columns of
#: ``_ARCH_KEYS`` followed by ``tie_word_embeddings``.
_QWEN25_TABLE = {  # hidden, intermediate, layers, heads, kv heads, vocab, tied
    "Qwen2.5-0.5B": (896, 4864, 24, 14, 2, 151936, True),
    "Qwen2.5-1.5B": (1536, 8960, 28, 12, 2, 151936, True),
    "Qwen2.5-3B": (2048, 11008, 36, 16, 2, 151936, True),
    "Qwen2.5-7B": (3584, 18944, 28, 28, 4, 152064, False),
    "Qwen2.5-14B": (5120, 13824, 48, 40, 8, 152064, False),
    "Qwen2.5-32B": (5120, 27648, 64, 40, 8, 152064, False),
}
QWEN25_ARCHS: dict[str, dict[str, Any]] = {
    name: dict(zip((*_ARCH_KEYS, "tie_word_embeddings"), row, strict=True)) for name, row in _QWEN25_TABLE.items()
}


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory by part (bytes); ``total_bytes`` includes the CUDA context."""

    total_bytes: int
    parts: Mapping[str, int]
    n_params: int
    n_lora_params: int

    @property
    def allocated_bytes(self) -> int:
        """Comparable with ``torch.cuda.max_memory_allocated`` (no CUDA context)."""
        return self.total_bytes - int(self.parts.get("cuda_context", 0))

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in self.parts.items())
        return f"{self.total_bytes / GIB:.2f} GiB ({parts})"


def _arch(arch: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(arch, str):
        if arch not in QWEN25_ARCHS:
            raise ConfigError(f"unknown architecture {arch!r}; known: {sorted(QWEN25_ARCHS)} or pass a config dict")
        return dict(QWEN25_ARCHS[arch])
    missing = [k for k in _ARCH_KEYS if not isinstance(arch.get(k), int) or arch.get(k, 0) <= 0]
    if missing:
        raise ConfigError(f"architecture config: missing or non-positive integer fields {missing} (from config.json)")
    out = {k: int(arch[k]) for k in _ARCH_KEYS}
    out["tie_word_embeddings"] = bool(arch.get("tie_word_embeddings", False))
    if out["hidden_size"] % out["num_attention_heads"]:
        raise ConfigError("architecture config: hidden_size must be a multiple of num_attention_heads")
    return out


def arch_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture dict of a model's ``config.json`` (a multimodal config's ``text_config``).

    ``num_key_value_heads`` absent means multi-head attention (as many key/value heads as query
    heads), as in transformers' Llama/Qwen2 configs; the other fields are required.
    """
    cfg = dict(config.get("text_config") or config)
    if cfg.get("num_key_value_heads") is None:
        cfg["num_key_value_heads"] = cfg.get("num_attention_heads")
    return _arch(cfg)


def module_shapes(arch: Mapping[str, Any] | str) -> dict[str, tuple[int, int]]:
    """``{module: (in_features, out_features)}`` of one decoder layer's linear projections."""
    a = _arch(arch)
    h, i = a["hidden_size"], a["intermediate_size"]
    d_kv = a["num_key_value_heads"] * h // a["num_attention_heads"]
    return {"q_proj": (h, h), "k_proj": (h, d_kv), "v_proj": (h, d_kv), "o_proj": (h, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def count_params(arch: Mapping[str, Any] | str) -> dict[str, int]:
    """Parameter counts: ``linear`` (decoder projections), ``embed``, ``lm_head``, ``other`` (norms, biases)."""
    a = _arch(arch)
    h, L, V = a["hidden_size"], a["num_hidden_layers"], a["vocab_size"]
    shapes = module_shapes(a)
    d_kv = shapes["k_proj"][1]
    return {
        "linear": L * sum(i * o for i, o in shapes.values()),
        "embed": V * h,
        "lm_head": 0 if a["tie_word_embeddings"] else V * h,
        "other": (2 * L + 1) * h + L * (h + 2 * d_kv),
    }


def estimate_peak_memory(
    arch: Mapping[str, Any] | str,
    *,
    quantization: str | None,
    lora_r: int,
    lora_targets: tuple[str, ...] | list[str],
    batch_size: int,
    seq_len: int,
    gradient_checkpointing: bool,
    optimizer: str = "adamw",
    chunked_logits: bool = True,
    kbit_fp32_upcast: bool = False,
) -> MemoryEstimate:
    """Estimate peak training memory (formulas in the module docstring); ``arch`` a config dict or a known name.

    ``kbit_fp32_upcast``: ``TrainSpec.kbit_fp32_upcast`` (a quantized base's non-quantized weights in fp32).
    """
    a = _arch(arch)
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization = {quantization!r} is invalid; allowed: 'nf4', 'int8', 'bf16' or None")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer = {optimizer!r} is invalid; allowed: {OPTIMIZERS}")
    for name, value in (("lora_r", lora_r), ("batch_size", batch_size), ("seq_len", seq_len)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} = {value!r} is invalid; allowed: an integer >= 1")
    shapes = module_shapes(a)
    unknown = sorted(set(lora_targets) - set(shapes))
    if unknown or not lora_targets:
        raise ConfigError(f"lora_targets {list(lora_targets)} invalid; allowed: a non-empty subset of {sorted(shapes)}")

    h, i, L, V = a["hidden_size"], a["intermediate_size"], a["num_hidden_layers"], a["vocab_size"]
    d_kv = shapes["k_proj"][1]
    counts = count_params(a)
    quantized = quantization in ("nf4", "int8")
    lin_bytes = WEIGHT_BYTES[quantization] + (4 / h if quantization == "int8" else 0.0)
    half = KBIT_HALF_BYTES if quantized and kbit_fp32_upcast else HALF_BYTES
    weights = counts["linear"] * lin_bytes + (counts["embed"] + counts["lm_head"] + counts["other"]) * half

    n_lora = lora_param_count(a, lora_r=lora_r, lora_targets=lora_targets)
    lora = n_lora * LORA_STATE_BYTES["bf16" if quantized else "fp32"]

    tokens = batch_size * seq_len
    per_layer = tokens * (ACT_H_BYTES * h + ACT_I_BYTES * i + ACT_KV_BYTES * d_kv)
    activations = tokens * L * CHECKPOINT_BYTES_PER_H * h + per_layer if gradient_checkpointing else L * per_layer
    logits = logit_bytes(tokens, V, head_bytes=half, chunked=chunked_logits)
    if chunked_logits and gradient_checkpointing:  # the chunk and one layer's recomputation are not live together
        logits = max(0, logits - per_layer)
    dequant = 2 * h * i if quantized else 0

    parts = {
        "weights": int(weights),
        "lora": int(lora),
        "activations": int(activations),
        "logits": int(logits),
        "dequant": int(dequant),
        "cuda_context": CUDA_CONTEXT_BYTES,
    }
    return MemoryEstimate(total_bytes=sum(parts.values()), parts=parts, n_params=sum(counts.values()),
                          n_lora_params=int(n_lora))


def estimate_dpo_peak_memory(
    arch: Mapping[str, Any] | str, *, batch_size: int, seq_len: int, **kwargs: Any
) -> MemoryEstimate:
    """Peak memory of a DPO step: the policy on chosen + rejected, then the reference forward.

    TRL's DPO trainer forwards the ``2 b`` sequences (chosen and rejected concatenated) through the
    policy, keeping its graph, and *then* the reference (the same PEFT model with the adapter
    disabled, under ``no_grad``, gradient checkpointing off). So the policy's peak
    (:func:`estimate_peak_memory` at batch ``2 b``) is held while the reference's transients are live:
    one layer's activations for ``2 b s`` tokens (no_grad frees each layer's tensors before the next)
    and its log-probabilities over the vocabulary, ``2 b s * min(V, LOGIT_CHUNK)`` values in the head's dtype
    with TRL's fused LM head (TRL >= 1.16), else ``2 b s V * LOGITS_BYTES``. These two are the parts
    ``ref_activations`` and ``ref_logits``. ``kwargs`` are the other arguments of :func:`estimate_peak_memory`.
    """
    policy = estimate_peak_memory(arch, batch_size=2 * batch_size, seq_len=seq_len, **kwargs)
    a = _arch(arch)
    h, i, V = a["hidden_size"], a["intermediate_size"], a["vocab_size"]
    d_kv = module_shapes(a)["k_proj"][1]
    tokens = 2 * batch_size * seq_len
    ref_activations = tokens * (ACT_H_BYTES * h + ACT_I_BYTES * i + ACT_KV_BYTES * d_kv)
    upcast = kwargs.get("kbit_fp32_upcast", False) and kwargs.get("quantization") in ("nf4", "int8")
    ref_logits = logit_bytes(tokens, V, head_bytes=KBIT_HALF_BYTES if upcast else HALF_BYTES,
                             chunked=kwargs.get("chunked_logits", True))
    parts = dict(policy.parts)
    parts["ref_activations"] = int(ref_activations)
    parts["ref_logits"] = int(ref_logits)
    return MemoryEstimate(total_bytes=sum(parts.values()), parts=parts, n_params=policy.n_params,
                          n_lora_params=policy.n_lora_params)


def logit_bytes(tokens: int, vocab: int, *, head_bytes: float, chunked: bool) -> int:
    """The LM head's output for ``tokens`` positions: one ``LOGIT_CHUNK``-column chunk in the head's dtype
    (``head_bytes``) with TRL's fused head, else the full ``tokens x vocab`` logits and their fp32 copy."""
    return int(tokens * min(vocab, LOGIT_CHUNK) * head_bytes if chunked else tokens * vocab * LOGITS_BYTES)


def lora_param_count(arch: Mapping[str, Any] | str, *, lora_r: int, lora_targets: tuple[str, ...] | list[str]) -> int:
    """LoRA parameters ``N = L * r * sum_{targets} (in + out)`` (A is ``r x in``, B is ``out x r``)."""
    a = _arch(arch)
    shapes = module_shapes(a)
    unknown = sorted(set(lora_targets) - set(shapes))
    if unknown or not lora_targets:
        raise ConfigError(f"lora_targets {list(lora_targets)} invalid; allowed: a non-empty subset of {sorted(shapes)}")
    return a["num_hidden_layers"] * lora_r * sum(shapes[t][0] + shapes[t][1] for t in set(lora_targets))


def checkpoint_bytes(n_lora_params: int, *, quantization: str | None, optim: str) -> int:
    """Disk bytes of one adapters-only Trainer checkpoint.

    ``adapter_model.safetensors`` holds the LoRA parameters (bf16 on a quantized base, fp32 otherwise,
    as in :data:`LORA_STATE_BYTES`); ``optimizer.pt`` the two AdamW moments per parameter
    (:data:`OPTIMIZER_STATE_BYTES`: 1 byte each for the 8-bit optimizers, fp32 for ``*_32bit``, the
    parameter's dtype for torch's AdamW); plus :data:`CHECKPOINT_FIXED_BYTES` for the tokenizer files,
    scheduler, RNG and trainer state.
    """
    if optim not in OPTIMIZER_STATE_BYTES:
        raise ConfigError(f"optim = {optim!r} is invalid; allowed: {sorted(OPTIMIZER_STATE_BYTES)}")
    param = 2 if quantization in ("nf4", "int8") else 4
    moments = OPTIMIZER_STATE_BYTES[optim] or 2 * param
    return int(n_lora_params * (param + moments) + CHECKPOINT_FIXED_BYTES)


def max_batch_that_fits(
    arch: Mapping[str, Any] | str, budget_bytes: int, *, max_batch: int = 1024, **kwargs: Any
) -> int:
    """The largest batch size whose ``total_bytes`` fits ``budget_bytes`` (0 if not even 1 fits).

    The estimate grows monotonically with the batch size, so a binary search over ``[1, max_batch]``
    is exact; ``kwargs`` are the other arguments of :func:`estimate_peak_memory`.
    """
    def fits(b: int) -> bool:
        return estimate_peak_memory(arch, batch_size=b, **kwargs).total_bytes <= budget_bytes

    if not fits(1):
        return 0
    lo, hi = 1, max_batch
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def per_gpu_plan(estimate: MemoryEstimate, *, budget_bytes: int, n_gpus: int) -> dict[str, Any]:
    """What N data-parallel GPUs each hold, and whether FSDP would be needed.

    ``estimate`` is one rank's estimate at its *per-device* batch (the global batch divided over the ranks,
    :func:`cleanroom.distributed.divide_batch`). Data parallelism (DDP) replicates the weights on every GPU and
    adds one gradient bucket the size of the trainable (LoRA) parameters, ``4 N_lora`` bytes (fp32), so more
    GPUs never lower the weights per GPU. When ``weights + lora + cuda_context`` alone exceed the budget no
    batch fits on any number of DDP ranks: sharding the weights (FSDP, ``weights / n_gpus`` per GPU) is needed.
    """
    if not isinstance(n_gpus, int) or isinstance(n_gpus, bool) or n_gpus < 1:
        raise ConfigError(f"n_gpus = {n_gpus!r} is invalid; allowed: an integer >= 1")
    bucket = 4 * estimate.n_lora_params if n_gpus > 1 else 0
    per_gpu = estimate.total_bytes + bucket
    fixed = sum(int(estimate.parts.get(k, 0)) for k in ("weights", "lora", "cuda_context")) + bucket
    fsdp = fixed > budget_bytes
    reason = (f"weights per GPU {fixed / GIB:.1f} GiB exceed the {budget_bytes / GIB:.1f} GiB budget on any number of "
              f"data-parallel GPUs; FSDP would shard them to {estimate.parts.get('weights', 0) / n_gpus / GIB:.1f} GiB "
              "per GPU (not supported by cleanroom yet: use a quantized base or a larger GPU)") if fsdp else None
    return {"n_gpus": n_gpus, "per_gpu_bytes": per_gpu, "fits": per_gpu <= budget_bytes, "fsdp_needed": fsdp,
            "reason": reason}



def arch_for(name: str) -> dict[str, Any]:
    """The architecture dict of a known Qwen2.5 size from a name like ``Qwen/Qwen2.5-32B`` or ``qwen2.5-0.5b``."""
    key = name.rsplit("/", 1)[-1].lower().removesuffix("-instruct")
    for arch_name, arch in QWEN25_ARCHS.items():
        if arch_name.lower() == key:
            return dict(arch)
    raise ConfigError(f"{name!r} is not a known Qwen2.5 architecture; known: {', '.join(QWEN25_ARCHS)}")

__all__ = [
    "arch_for",
    "QWEN25_ARCHS",
    "MemoryEstimate",
    "arch_from_config",
    "checkpoint_bytes",
    "count_params",
    "estimate_dpo_peak_memory",
    "estimate_peak_memory",
    "lora_param_count",
    "max_batch_that_fits",
    "module_shapes",
    "per_gpu_plan",
]

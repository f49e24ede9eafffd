"""The optional Unsloth backend: faster QLoRA on CUDA, same gates as the PEFT path.

Imported and used only when CUDA is present *and* ``unsloth`` imports; otherwise ``DependencyError``
with the install hint — never a silent fallback. Unsloth's ``FastLanguageModel.from_pretrained`` may
map a model name to its own pre-quantized repository (``unsloth/...-bnb-4bit``); we refuse that: the
name or path that was asked for must be the one that was loaded. Unsloth also rewrites tokenizers
(pad token, chat template), so ``load_unsloth`` is an alternative loader (listed in
``[tool.cleanroom.gates] loader_modules``): it disarms what Unsloth returns with the loader's own
``clean_tokenizer``/``clean_model``, records the guard snapshot, and runs ``guard.recheck`` after the
LoRA wrapping so a change made by Unsloth is a ContaminationError, never a silent template.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

from cleanroom import guard
from cleanroom.errors import ConfigError, ContaminationError, DependencyError
from cleanroom.loader import CleanModelLoader, clean_model, clean_tokenizer, read_model_config
from cleanroom.sentinels import SENTINELS
from cleanroom.training.adapter_weights import load_adapter_weights
from cleanroom.training.specs import LoraSpec


def unsloth_available() -> str | None:
    """None when the backend can be used, else the reason it cannot.

    Whether unsloth imports is asked of a child Python, not of this process: importing unsloth patches
    transformers for the whole process (every later stage, DPO included, then runs its compiled code), so a
    mere availability check — ``backend: auto`` in preflight — must leave this process as it was. Only
    :func:`load_unsloth` imports it here.
    """
    try:
        import torch  # heavy optional: torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "CUDA is not available (unsloth needs an NVIDIA GPU)"
    if "unsloth" in sys.modules:
        return None
    return _child_import("unsloth")


@functools.cache
def _child_import(module: str) -> str | None:
    """None if ``import module`` succeeds in a child of this interpreter, else the last line it printed."""
    try:
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                              timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{module} import could not be tried in a child process: {type(exc).__name__}: {exc}"
    if done.returncode == 0:
        return None
    lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
    return f"{module} does not import: {lines[-1] if lines else f'exit status {done.returncode}'}"


def _check_against_clean(model_name: str, model: Any, tokenizer: Any, clean: Any) -> None:
    """Unsloth's tokenizer, re-cleaned, against the clean loader's (sentinel encodings, guard snapshot) and its
    model's embedding rows against the checkpoint's ``vocab_size``; a difference is a ContaminationError."""
    clean_tokenizer(tokenizer)
    for text in SENTINELS:
        theirs_ids, ours_ids = guard.encode(tokenizer, text, add_bos=False), guard.encode(clean, text, add_bos=False)
        if theirs_ids != ours_ids:
            raise ContaminationError(
                f"{model_name}: the tokenizer Unsloth returned encodes {text!r} as {theirs_ids[:12]} but the clean "
                f"loader's as {ours_ids[:12]}; Unsloth changed the vocabulary or the pre-tokenizer — use backend=peft")
    theirs, ours = guard.snapshot(None, tokenizer)["tokenizer"], guard.snapshot(None, clean)["tokenizer"]
    rewrites = sorted(k for k in ours if theirs.get(k) != ours[k])
    if rewrites:  # re-cleaned, Unsloth's tokenizer must be the clean one: what differs is a change we cannot undo
        raise ContaminationError(f"{model_name}: the tokenizer Unsloth returned still differs from the clean loader's "
                                 f"after cleaning ({', '.join(rewrites)}); use backend=peft")
    rows = int(model.get_input_embeddings().weight.shape[0])
    vocab = read_model_config(Path(model_name)).get("vocab_size")
    if vocab is not None and rows != int(vocab):
        raise ContaminationError(f"{model_name}: Unsloth's model has {rows} embedding rows but the checkpoint's config "
                                 f"says vocab_size {vocab}; Unsloth resized the vocabulary — use backend=peft")


def load_unsloth(
    model_name: str, *, max_seq_length: int, quantization: str | None, lora: LoraSpec, seed: int = 3407,
    adapter: str | Path | None = None,
) -> tuple[Any, Any]:
    """(model with LoRA attached, the clean loader's tokenizer) through Unsloth; refuses a swapped model name.

    ``adapter``: a saved adapter (an SFT stage's ``sft/adapter``, trained with this ``lora``) whose weights fill
    the attached LoRA, proven tensor by tensor (:func:`cleanroom.training.adapter_weights.load_adapter_weights`):
    the model then computes that policy, as DPO's start and (TRL's frozen copy) its reference. Without it the
    LoRA is fresh (B = 0: the base's function).

    Unsloth's own tokenizer is checked and dropped: re-cleaned, it must encode the sentinels as the clean one
    does and match its guard snapshot field for field, and the model's embedding rows must be the checkpoint's
    ``vocab_size``; anything else is a ContaminationError (use backend=peft).

    ``quantization`` is the loader's vocabulary: ``"nf4"`` (Unsloth's 4-bit) or None; Unsloth has
    no int8 path, so ``"int8"`` is refused rather than silently loaded another way.
    """
    if quantization not in (None, "nf4"):
        raise ConfigError(f"unsloth backend: quantization={quantization!r} is not supported (nf4 or none); "
                          "use backend=peft for int8")
    reason = unsloth_available()
    if reason is not None:
        raise DependencyError(f"unsloth backend unavailable: {reason}; install with `pip install 'cleanroom[unsloth]'` "
                              "on a CUDA machine or use backend=peft")
    from unsloth import FastLanguageModel  # heavy optional: unsloth

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=model_name, max_seq_length=max_seq_length, load_in_4bit=quantization == "nf4", dtype=None,
        use_exact_model_name=True,
    )
    loaded = str(getattr(model.config, "_name_or_path", ""))
    if loaded.rstrip("/") != str(model_name).rstrip("/"):
        raise ConfigError(
            f"unsloth loaded {loaded!r} but {model_name!r} was requested; a silent swap of the model is refused — "
            "pass the exact local path or pin the repository"
        )
    # Unsloth's tokenizer is not the one the run uses: it comes back rewritten (pad token <|vision_pad|>) with
    # Unsloth's save hooks bound to it, which re-write tokenizer_config.json in every checkpoint (measured on
    # the H200, docs/gpu-gate.md session 14). The run trains with, and saves, the clean loader's tokenizer; Unsloth's
    # must encode exactly as it does (else the model Unsloth prepared expects other IDs) and is then dropped.
    clean, _ = CleanModelLoader(model_name, probe=False).load_tokenizer(decide=False)
    _check_against_clean(model_name, model, tokenizer, clean)
    clean_model(model, guard.base_eos_id(clean))
    setattr(model, guard.SNAPSHOT_ATTR, guard.snapshot(model, clean)["model"])
    model = FastLanguageModel.get_peft_model(
        model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.targets),
        bias="none", use_gradient_checkpointing="unsloth", random_state=seed, use_rslora=lora.use_rslora,
    )
    # how many of the adapter's tensors were proven to have landed (0: a fresh LoRA), for the stage's provenance
    model.cleanroom_adapter_tensors = load_adapter_weights(model, adapter) if adapter is not None else 0
    guard.recheck(model, clean)
    model.cleanroom_backend = "unsloth"  # train_sft accepts this pre-wrapped model (its LoRA is attached)
    return model, clean


__all__ = ["load_unsloth", "unsloth_available"]

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

from typing import Any

from cleanroom import guard
from cleanroom.errors import ConfigError, DependencyError
from cleanroom.loader import clean_model, clean_tokenizer
from cleanroom.training.specs import LoraSpec


def unsloth_available() -> str | None:
    """None when the backend can be used, else the reason it cannot."""
    try:
        import torch  # heavy optional: torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "CUDA is not available (unsloth needs an NVIDIA GPU)"
    try:
        # heavy optional: unsloth
        import unsloth  # noqa: F401
    except Exception as exc:  # unsloth raises more than ImportError when its stack is incomplete
        return f"unsloth does not import: {type(exc).__name__}: {exc}"
    return None


def load_unsloth(
    model_name: str, *, max_seq_length: int, quantization: str | None, lora: LoraSpec, seed: int = 3407
) -> tuple[Any, Any]:
    """(model with LoRA attached, tokenizer) through Unsloth; refuses a swapped model name.

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
    clean_tokenizer(tokenizer)
    setattr(tokenizer, guard.SNAPSHOT_ATTR, guard.snapshot(None, tokenizer))
    clean_model(model, guard.base_eos_id(tokenizer))
    setattr(model, guard.SNAPSHOT_ATTR, guard.snapshot(model, tokenizer)["model"])
    model = FastLanguageModel.get_peft_model(
        model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.targets),
        bias="none", use_gradient_checkpointing="unsloth", random_state=seed, use_rslora=lora.use_rslora,
    )
    guard.recheck(model, tokenizer)
    model.cleanroom_backend = "unsloth"  # train_sft accepts this pre-wrapped model (its LoRA is attached)
    return model, tokenizer


__all__ = ["load_unsloth", "unsloth_available"]

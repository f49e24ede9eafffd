"""Merge a LoRA adapter into its base weights, with proof that nothing changed.

Merging replaces ``W`` by ``W' = W + (alpha / r) * B A``; mathematically ``W' x = W x + (alpha/r) B A x``,
so the merged model computes the same function. Numerically it does not quite (the sum is rounded to
the weight dtype: about 2^-8 relative for bf16), so we *measure* it: the logits of the adapter model
and of the merged model on the probe texts, over real (non-pad) positions,

    max_abs_diff = max_{text, position, vocab} | logits_adapter - logits_merged |

and raise ``GateError`` if it exceeds ``atol``. Typical values: ~1e-5 in fp32, ~1e-1 in bf16 with
logits of magnitude ~10. A 4-bit base cannot be merged exactly (re-quantisation); merge into a
bf16 copy of the base instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cleanroom import guard
from cleanroom.errors import ConfigError, GateError


def probe_logits(model: Any, tokenizer: Any, texts: Sequence[str]) -> list[Any]:
    """fp32 logits ``[len_i, vocab]`` for each text, one text at a time (no padding to mask out)."""
    import torch  # heavy optional: torch

    device = next(model.parameters()).device
    out = []
    model.eval()
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([guard.encode(tokenizer, text)], dtype=torch.long, device=device)
            out.append(model(input_ids=ids).logits[0].float().cpu())
    return out


def merge_and_verify(
    model_with_adapter: Any, tokenizer: Any, *, probe_texts: Sequence[str], atol: float
) -> tuple[Any, float]:
    """Merge the adapter into the base (in place) and return ``(merged_model, max_abs_diff)``.

    Raises ``GateError`` naming the difference and the tolerance if the logits disagree by more than
    ``atol``; ``ConfigError`` if the model has no adapter or there are no probe texts.
    """
    from peft import PeftModel  # heavy optional: peft

    if not isinstance(model_with_adapter, PeftModel):
        raise ConfigError(
            f"merge_and_verify needs a PEFT model carrying a LoRA adapter, got {type(model_with_adapter).__name__}"
        )
    texts = [t for t in probe_texts if isinstance(t, str) and t]
    if not texts or len(texts) != len(probe_texts):
        raise ConfigError("merge_and_verify: probe_texts must be a non-empty list of non-empty strings")
    if not (isinstance(atol, int | float) and atol > 0):
        raise ConfigError(f"merge_and_verify: atol = {atol!r} is invalid; allowed: a number > 0")
    if getattr(model_with_adapter, "is_loaded_in_4bit", False) or getattr(model_with_adapter, "is_loaded_in_8bit", False):
        raise ConfigError(
            "merge_and_verify: the base is quantized (bitsandbytes); merging re-quantizes and breaks equivalence — "
            "load the base in bf16, attach the saved adapter (PeftModel.from_pretrained) and merge that"
        )
    before = probe_logits(model_with_adapter, tokenizer, texts)
    merged = model_with_adapter.merge_and_unload()
    after = probe_logits(merged, tokenizer, texts)
    diff = max(float((a - b).abs().max()) for a, b in zip(before, after, strict=True))
    if not diff <= atol:  # also catches NaN
        raise GateError(
            f"merged vs adapter logits differ by max |Δ| = {diff:.3g} > atol {atol:g} on {len(texts)} probe texts; "
            "the merge changed the model — merge in a wider dtype (fp32/bf16 base, not quantized) or check the adapter"
        )
    return merged, diff


__all__ = ["merge_and_verify", "probe_logits"]

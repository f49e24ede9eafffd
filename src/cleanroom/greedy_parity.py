"""Greedy parity: where two greedy runs of the same prompts part, and whether each parting is a tie.

Every engine of :mod:`cleanroom.generation` promises ``hf``'s greedy tokens; batching, padding and kernels
may still break a near-tie the other way. :func:`greedy_first_differences` finds the first position where
two runs' kept tokens differ and measures the reference model's logit gap there; :func:`greedy_divergences`
lists the partings whose gap is over the precision's logit noise. ``tests/test_generation.py`` and
``benchmarks/bench_generation.py`` hold every engine to ``hf`` through them (docs/generation.md gives the
tolerance and the measurements behind it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cleanroom import guard
from cleanroom.errors import ConfigError

if TYPE_CHECKING:
    from cleanroom.generation import GenerationResult


def greedy_first_differences(model: Any, tokenizer: Any, prompts: Sequence[str], reference: GenerationResult,
                             candidate: GenerationResult) -> list[tuple[int, int, int, int, float, float]]:
    """``(prompt, position, reference token, candidate token, logit gap, gap in bfloat16 steps)`` where two
    greedy runs part.

    At the first position ``j`` where the kept token lists differ (a sequence that ended counts as having
    emitted the base EOS there), the reference model is run on ``prompt + reference[:j]`` and the gap is
    ``|logit[a] - logit[b]|`` of the two tokens chosen there; the steps are that gap over the bfloat16 spacing
    at the larger of the two logits (``2**(floor(log2 |x|) - 7)``: 1/64 for logits in [2, 4)).
    """
    import torch  # heavy optional: torch

    eos = guard.base_eos_id(tokenizer)
    device = next(model.parameters()).device
    found = []
    for i, (ref, cand) in enumerate(zip(reference.token_ids, candidate.token_ids, strict=True)):
        if ref == cand:
            continue
        j = next((k for k, (a, b) in enumerate(zip(ref, cand, strict=False)) if a != b), min(len(ref), len(cand)))
        a = ref[j] if j < len(ref) else eos
        b = cand[j] if j < len(cand) else eos
        ids = torch.tensor([guard.encode(tokenizer, prompts[i]) + ref[:j]], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1].float()
        gap = abs(float(logits[a] - logits[b]))
        top = max(abs(float(logits[a])), abs(float(logits[b])), 2.0**-126)
        found.append((i, j, a, b, gap, gap / 2.0 ** (math.floor(math.log2(top)) - 7)))
    return found


def greedy_divergences(model: Any, tokenizer: Any, prompts: Sequence[str], reference: GenerationResult,
                       candidate: GenerationResult, *, tie_tol: float | None = None,
                       tie_steps: float | None = None) -> list[str]:
    """The prompts where *candidate*'s greedy tokens leave *reference*'s other than at a tie.

    A first difference (:func:`greedy_first_differences`) whose logit gap is under the tolerance is a tie
    (either token is a correct greedy choice; batching and kernels may break it differently); anything else
    is a divergence and is listed. The tolerance is the logit noise of the precision, given either absolute
    (``tie_tol``: about 1e-3 in float32) or in bfloat16 steps at the logits' magnitude (``tie_steps``: bf16
    keeps 8 bits of mantissa, so two kernel sets summing a deep bf16 forward in other orders part by a few
    steps; 8 steps is 3-6% of |logit|: 0.125 for logits in [2, 4), 1.0 in [16, 32)).
    """
    if (tie_tol is None) == (tie_steps is None):
        raise ConfigError("greedy_divergences: give exactly one of tie_tol (absolute) or tie_steps (bfloat16 steps)")
    limit, unit = (tie_tol, "") if tie_tol is not None else (tie_steps, " bf16 steps")
    assert limit is not None
    return [f"prompt {i}, new token {j}: reference {a}, candidate {b}, logit gap {gap:.4g} ({steps:.1f} bf16 steps) "
            f">= {limit}{unit}"
            for i, j, a, b, gap, steps in greedy_first_differences(model, tokenizer, prompts, reference, candidate)
            if (steps if unit else gap) >= limit]


__all__ = ["greedy_divergences", "greedy_first_differences"]

"""Scoring: strict and loose verdicts per prompt, and the accuracy summary.

Strict: instruction ``i`` is followed iff ``response.strip() != ""`` and ``check_i(response)``.
Loose (Zhou et al. 2023, §3): followed iff any of the 8 variants passes: the response, without its
first line, without its last line, without both, and each of those with every ``*`` removed (an
empty variant never passes). Loose ≥ strict by construction, because the first variant is the response.

Prompt level: a prompt counts iff all its instructions are followed; instruction level: every
instruction counts once. Prompt-level accuracies carry Wilson score intervals (Wilson 1927):
``(p̂ + z²/2n ± z·sqrt(p̂(1-p̂)/n + z²/4n²)) / (1 + z²/n)``. Instruction-level accuracies carry the
cluster-robust t interval with cluster = prompt key (``cleanroom.stats.clustered_mean_interval``):
instructions of one prompt pass or fail together, and a Wilson interval over all instructions
treats them as independent and under-covers (verification/test_statistics.py shows it).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cleanroom.errors import InputError
from cleanroom.ifeval.io import Key, PromptRecord


def loose_variants(response: str) -> list[str]:
    """The 8 standard loose variants, in the reference order."""
    lines = response.split("\n")
    drop_first = "\n".join(lines[1:]).strip()
    drop_last = "\n".join(lines[:-1]).strip()
    drop_both = "\n".join(lines[1:-1]).strip()
    plain = [response, drop_first, drop_last, drop_both]
    return plain + [v.replace("*", "") for v in plain]


@functools.cache
def scorer_sha256() -> str:
    """The scorer's version: the digest of the code that decides a verdict (checkers, text helpers, this
    module), so two verdict files scored by different code are never taken as comparable."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("checkers.py", "text.py", "scoring.py"):
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()


def scoring_conditions(record: PromptRecord) -> dict[str, Any]:
    """What a verdict was scored under, apart from how its response was produced: the prompt record's digest
    (its text, instructions and kwargs) and the scorer's version. ``eval compare`` requires them equal."""
    prompt = json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return {"prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(), "scorer_sha256": scorer_sha256()}


def score_record(record: PromptRecord, response: str) -> dict[str, Any]:
    """Verdict payload for one prompt (no provenance block)."""
    instructions = record.instructions()
    strict = [bool(response.strip()) and ins(response) for ins in instructions]
    variants = [v for v in loose_variants(response) if v.strip()]
    loose = [any(ins(v) for v in variants) for ins in instructions]
    return {
        "key": record.key,
        "instruction_id_list": list(record.instruction_id_list),
        "response": response,
        "strict": {"follow_all_instructions": all(strict), "follow_instruction_list": strict},
        "loose": {"follow_all_instructions": all(loose), "follow_instruction_list": loose},
    }


def score_responses(prompts: Iterable[PromptRecord], responses: Mapping[Key, str]) -> list[dict[str, Any]]:
    """Join on key and score; a prompt without a response or a response without a prompt is an InputError."""
    prompts = list(prompts)
    prompt_keys = [p.key for p in prompts]
    missing = [k for k in prompt_keys if k not in responses]
    extra = sorted((k for k in responses if k not in set(prompt_keys)), key=str)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} prompt key(s) have no response: {missing[:10]}")
        if extra:
            parts.append(f"{len(extra)} response key(s) have no prompt: {extra[:10]}")
        raise InputError("; ".join(parts) + "; responses are joined to prompts on 'key'")
    return [score_record(p, responses[p.key]) for p in prompts]


def _interval(successes: int, n: int) -> dict[str, Any]:
    """Prompt level: one pass/fail per prompt, so the 95% Wilson interval."""
    from cleanroom.stats import wilson_interval  # heavy optional: scipy (reading a prompt file needs none)

    iv = wilson_interval(successes, n)
    return {"estimate": iv.estimate, "low": iv.low, "high": iv.high, "n": n, "successes": successes,
            "method": iv.method}


def _instruction_interval(flags: list[bool], clusters: list[int]) -> dict[str, Any]:
    """Instruction level: 95% cluster-robust t interval (cluster = prompt key, t with C − 1 df),
    clipped to [0, 1] since an accuracy cannot leave it (the t interval is symmetric).

    The sandwich SE is 0 when every prompt has the same instruction accuracy (all pass, all fail,
    or one prompt) — then the interval would have zero width, so the Wilson interval on the
    instruction counts stands in, and ``method`` says so.
    """
    # heavy optional: scipy (reading a prompt file needs none)
    from cleanroom.stats import clustered_mean_interval, wilson_interval
    from cleanroom.stats.intervals import clustered_mean_se  # heavy optional: scipy

    x = np.asarray(flags, dtype=float)
    groups = np.asarray(clusters)
    successes, n = int(x.sum()), int(x.size)
    _, se, c = clustered_mean_se(x, groups)
    if c < 2 or se == 0.0:
        iv = wilson_interval(successes, n)
        method = "wilson (no between-prompt variation: the clustered SE is 0)"
    else:
        iv = clustered_mean_interval(x, groups)
        method = f"clustered-t (by prompt key, C={c})"
    naive = wilson_interval(successes, n)  # the IFEval-convention interval, kept beside it for comparison
    return {"estimate": successes / n, "low": max(iv.low, 0.0), "high": min(iv.high, 1.0), "n": n,
            "successes": successes, "method": method, "wilson_low": naive.low, "wilson_high": naive.high}


def summarize(verdicts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Prompt/instruction × strict/loose accuracy with 95% intervals (Wilson per prompt, clustered by
    prompt key per instruction), and per-type accuracy with n."""
    verdicts = list(verdicts)
    if not verdicts:
        raise InputError("no verdicts to summarize; score at least one prompt")
    cluster_of: dict[Any, int] = {}
    prompt_index = [cluster_of.setdefault(v["key"], len(cluster_of)) for v in verdicts]
    out: dict[str, Any] = {"n_prompts": len(verdicts)}
    per_type: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "strict": 0, "loose": 0})
    for mode in ("strict", "loose"):
        prompt_ok = sum(bool(v[mode]["follow_all_instructions"]) for v in verdicts)
        flags = [bool(f) for v in verdicts for f in v[mode]["follow_instruction_list"]]
        clusters = [c for v, c in zip(verdicts, prompt_index, strict=True) for _ in v[mode]["follow_instruction_list"]]
        out[f"prompt_{mode}"] = _interval(prompt_ok, len(verdicts))
        out[f"instruction_{mode}"] = _instruction_interval(flags, clusters)
    for v in verdicts:
        for i, iid in enumerate(v["instruction_id_list"]):
            row = per_type[iid]
            row["n"] += 1
            row["strict"] += bool(v["strict"]["follow_instruction_list"][i])
            row["loose"] += bool(v["loose"]["follow_instruction_list"][i])
    out["n_instructions"] = out["instruction_strict"]["n"]
    out["per_type"] = {
        iid: {"n": r["n"], "strict": r["strict"] / r["n"], "loose": r["loose"] / r["n"]}
        for iid, r in sorted(per_type.items())
    }
    return out


def format_summary(summary: Mapping[str, Any]) -> str:
    """Four lines: accuracy and its 95% interval (see :func:`summarize`) for each level × mode.

    Instruction-level lines also show the Wilson interval on the instruction counts (the IFEval
    convention), which treats a prompt's instructions as independent.
    """
    lines = []
    for level in ("prompt", "instruction"):
        for mode in ("strict", "loose"):
            iv = summary[f"{level}_{mode}"]
            lines.append(
                f"{level:11s} {mode:6s} {100 * iv['estimate']:6.2f}%  "
                f"[{100 * iv['low']:.2f}, {100 * iv['high']:.2f}]  ({iv['successes']}/{iv['n']})"
                + (
                    f"  {iv['method'].split(' (')[0]} by prompt; Wilson on the counts "
                    f"[{100 * iv['wilson_low']:.2f}, {100 * iv['wilson_high']:.2f}]"
                    if "wilson_low" in iv
                    else "  Wilson"
                )
            )
    return "\n".join(lines)

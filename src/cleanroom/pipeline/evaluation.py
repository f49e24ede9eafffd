"""Evaluation: base, SFT and DPO answer the same held-out keys under ``eval.generation``; paired statistics.

The base arm is generated here, with the same decoding as the trained policies, so the paired test
compares like with like; the baseline stage stays the low-temperature assessment of the base model
(``spec.baseline``), reported on its own line and never mixed into the comparisons.

Family of comparisons: base vs SFT, SFT vs DPO, base vs DPO, Holm-corrected, each with its MDE,
at the configured level (prompt or instruction) and mode (strict or loose); both levels and modes
are also recorded for the report. Under a launcher every rank generates its share of each policy's batches
(:func:`follow_eval`); rank 0 scores and compares.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cleanroom import distributed
from cleanroom.artifacts import atomic_write_bytes, pretty_json
from cleanroom.config import EvalSpec
from cleanroom.errors import InputError
from cleanroom.ifeval import summarize
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST
from cleanroom.pipeline.common import Context, capture, generation_settings, load_model
from cleanroom.pipeline.respond import follow_respond, respond_and_score


def dpo_policy(ctx: Context) -> tuple[str, ...]:
    """The adapter stack that *is* the trained DPO policy, as the DPO stage recorded it in dpo/metrics.json
    (``sft/adapter`` + ``dpo/adapter`` over a merged base; ``dpo/adapter`` alone where DPO trained the SFT adapter in
    place: on a quantized base, or on Unsloth, whose LoRA it filled with ``sft/adapter``)."""
    stack = ctx.read_json("dpo", "metrics.json").get("policy_adapters")
    if not stack:
        raise InputError("eval: dpo/metrics.json has no policy_adapters (written by an older DPO stage); "
                         "delete the run's dpo/ and eval/ directories and re-run with --resume")
    return tuple(stack)


def policies(ctx: Context) -> dict[str, tuple[str, ...]]:
    """The three policies in the order they answer: SFT (loaded first, for the stage's provenance), DPO, base."""
    return {"sft": ("sft/adapter",), "dpo": dpo_policy(ctx), "base": ()}


def follow_eval(ctx: Context) -> None:
    """A rank other than 0: its batches of each policy's responses, the policies in :func:`run_eval`'s order."""
    for name, adapters in policies(ctx).items():
        follow_respond(ctx, "eval", name, adapters=adapters, gen=ctx.spec.eval.generation)


def compare_policies(files: Sequence[Path], e: EvalSpec, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The family (base, SFT, DPO verdict files, in that order) compared at both levels and modes, keyed
    ``"level/mode"``. Each file is compared under the conditions its own records carry: the stage's scorer writes
    them on every verdict (:func:`~cleanroom.pipeline.respond.score_into`), so a verdict without them was not
    written by it and is refused (:class:`~cleanroom.errors.IncomparableError`), never given conditions here."""
    # heavy optional: scipy (the command line and the other stages start without it)
    from cleanroom.stats.compare import compare_verdict_files

    comparisons = {}
    for level in ("prompt", "instruction"):
        for mode in ("strict", "loose"):
            rows = compare_verdict_files(files, level=level, mode=mode, min_n=e.min_n,
                                         override_reason=e.override_reason, seed=seed)
            comparisons[f"{level}/{mode}"] = [dataclasses.asdict(r) for r in rows]
    return comparisons


def run_eval(ctx: Context) -> dict[str, Any]:
    gen = ctx.spec.eval.generation
    stacks = policies(ctx)
    world = distributed.lead(ctx, "eval", work="generation sharded by batch")  # the others: follow_eval
    # the first policy loads before the capture, so the record holds the loader's provenance (version,
    # quantization, revision) like every other stage; each policy's adapters are listed in extra
    loaded = {"sft": load_model(ctx, adapters=tuple(ctx.run.path / a for a in stacks["sft"]), probe=False)}
    loader_prov = {k: v for k, v in loaded["sft"][2].items() if k != "adapters"}
    prov = capture(ctx, "eval", loader=loader_prov,
                   generation=generation_settings(ctx, "eval", loaded["sft"][0], gen, few_shot_digest=FEW_SHOT_DIGEST),
                   extra={"policies": {name: list(adapters) for name, adapters in stacks.items()},
                          "distributed": world})
    with ctx.run.stage("eval", provenance=prov,
                       inputs=["preflight/eval_prompts.jsonl", "sft/adapter", "dpo/adapter",
                               "dpo/metrics.json"]) as st:  # metrics.json names the DPO policy's adapter stack
        summaries = {}
        for name, adapters in stacks.items():
            bundle = loaded.pop(name, None) or load_model(ctx, adapters=tuple(ctx.run.path / a for a in adapters),
                                                          probe=False)
            verdicts = respond_and_score(ctx, st, name, adapters=adapters, gen=gen, model_bundle=bundle)
            summaries[name] = summarize(verdicts)
            del bundle
        # the family's files, named so the comparison labels read base / sft / dpo
        files = []
        for name in ("base", "sft", "dpo"):
            src = st.dir / f"{name}_verdicts.jsonl"
            dest = ctx.run.path / ".work" / "compare" / f"{name}.jsonl"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            files.append(dest)
        e = ctx.spec.eval
        result = {"primary": f"{e.level}/{e.mode}", "comparisons": compare_policies(files, e, ctx.spec.seed),
                  "summaries": summaries}
        atomic_write_bytes(st.dir / "comparison.json", pretty_json(result))
    return result

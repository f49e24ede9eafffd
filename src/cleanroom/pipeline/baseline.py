"""Baseline: the base model answers the held-out eval prompts (few-shot completion format), scored.

Under a launcher every rank generates its share of the batches (:func:`follow_baseline` on the ranks other
than 0); rank 0 writes the stage."""

from __future__ import annotations

from typing import Any

from cleanroom import distributed
from cleanroom.artifacts import atomic_write_bytes, pretty_json
from cleanroom.ifeval import summarize
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST
from cleanroom.pipeline.common import Context, capture, generation_settings, load_model
from cleanroom.pipeline.respond import follow_respond, respond_and_score


def run_baseline(ctx: Context) -> dict[str, Any]:
    world = distributed.lead(ctx, "baseline", work="generation sharded by batch")  # the others: follow_baseline
    model, tokenizer, loader_prov = load_model(ctx, probe=False)
    gen = ctx.spec.baseline
    prov = capture(ctx, "baseline", loader=loader_prov,
                   generation=generation_settings(ctx, "baseline", model, gen, few_shot_digest=FEW_SHOT_DIGEST),
                   extra={"distributed": world})
    with ctx.run.stage("baseline", provenance=prov, inputs=["preflight/eval_prompts.jsonl"]) as st:
        verdicts = respond_and_score(ctx, st, "base", adapters=(), gen=gen, model_bundle=(model, tokenizer, loader_prov))
        summary = summarize(verdicts)
        atomic_write_bytes(st.dir / "summary.json", pretty_json(summary))
    return summary


def follow_baseline(ctx: Context) -> None:
    """A rank other than 0: its batches of the base model's responses."""
    follow_respond(ctx, "baseline", "base", adapters=(), gen=ctx.spec.baseline)

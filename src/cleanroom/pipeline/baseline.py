"""Baseline: the base model answers the held-out eval prompts (few-shot completion format), scored."""

from __future__ import annotations

from typing import Any

from cleanroom.artifacts import atomic_write_bytes, pretty_json
from cleanroom.ifeval import summarize
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST
from cleanroom.pipeline.common import Context, capture, generation_settings, load_model
from cleanroom.pipeline.respond import respond_and_score


def run_baseline(ctx: Context) -> dict[str, Any]:
    model, tokenizer, loader_prov = load_model(ctx, probe=False)
    gen = ctx.spec.baseline
    prov = capture(ctx, "baseline", loader=loader_prov,
                   generation=generation_settings(ctx, "baseline", model, gen, few_shot_digest=FEW_SHOT_DIGEST))
    with ctx.run.stage("baseline", provenance=prov, inputs=["preflight/eval_prompts.jsonl"]) as st:
        verdicts = respond_and_score(ctx, st, "base", adapters=(), gen=gen, model_bundle=(model, tokenizer, loader_prov))
        summary = summarize(verdicts)
        atomic_write_bytes(st.dir / "summary.json", pretty_json(summary))
    return summary

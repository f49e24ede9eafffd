"""Baseline: the base model answers the held-out eval prompts (few-shot completion format), scored."""

from __future__ import annotations

from typing import Any

from cleanroom.artifacts import atomic_write_bytes, pretty_json
from cleanroom.ifeval import read_prompts, summarize
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST, few_shot_prompt
from cleanroom.pipeline.common import Context, capture, generation_settings, load_model, resolve_model
from cleanroom.pipeline.respond import generate_into, score_into
from cleanroom.provenance import hash_file


def eval_records(ctx: Context) -> list[Any]:
    return read_prompts(ctx.run.path / "preflight" / "eval_prompts.jsonl")


def model_refs(ctx: Context, adapters: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Parent references to the base model's weight files and the adapters (run-relative)."""
    path, gguf = resolve_model(ctx.spec.model, ctx.run.path)
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".gguf") and (gguf is None or p.name == gguf))
    refs = [{"artifact": str(p.resolve()), "sha256": hash_file(p), "record_id": None} for p in weights]
    for adapter in adapters:
        f = ctx.run.path / adapter / "adapter_model.safetensors"
        refs.append({"artifact": f"{adapter}/adapter_model.safetensors", "sha256": hash_file(f), "record_id": None})
    return refs


def respond_and_score(ctx: Context, stage_writer: Any, name: str, *, adapters: tuple[str, ...],
                      gen: Any, model_bundle: tuple | None = None) -> list[dict]:
    """Generate ``<name>_responses.jsonl`` and ``<name>_verdicts.jsonl`` inside an open stage."""
    records = eval_records(ctx)
    if model_bundle is None:
        model_bundle = load_model(ctx, adapters=tuple(ctx.run.path / a for a in adapters), probe=False)
    model, tokenizer, _ = model_bundle
    writer = stage_writer.jsonl(f"{name}_responses.jsonl")
    responses = generate_into(
        writer, model, tokenizer, records, gen=gen,
        parent_ref=lambda r: ctx.run.ref("preflight/eval_prompts.jsonl", f"eval_prompts:{r.key}"),
        id_prefix=f"{stage_writer.name}/{name}", render=lambda r: few_shot_prompt(r.prompt),
        progress=ctx.progress, label=f"{stage_writer.name}: {name}", budget=ctx.budget,
    )
    verdicts = score_into(
        stage_writer.jsonl(f"{name}_verdicts.jsonl"), records, responses,
        responses_artifact=f"{stage_writer.name}/{name}_responses.jsonl",
        id_prefix=f"{stage_writer.name}/{name}_verdict", model_refs=model_refs(ctx, adapters),
        produced_under={"model": {"name": name, "adapters": list(adapters)}, "generation": vars(gen),
                        "rendering": {"few_shot_digest": FEW_SHOT_DIGEST}},
    )
    return verdicts


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

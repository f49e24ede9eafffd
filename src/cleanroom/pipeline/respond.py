"""Generate responses to IFEval-format prompts through the guarded generation engine, then score them.

Used by the baseline, SFT-data, pairs and evaluation stages and by ``cleanroom eval run``: one code path,
so every model being compared sees byte-identical prompts (the few-shot completion format, its digest in
provenance) and the same generation settings. Responses are written record by record, so a killed run
resumes where it stopped without losing or duplicating a response. Under a launcher every rank generates
its share of the batches and rank 0 merges them into the same file (:mod:`cleanroom.pipeline.shards`). The
prompt records the stages answer (preflight's eval set and SFT pool) are read here too, so no stage imports
another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cleanroom.artifacts import read_records
from cleanroom.config import GenerationSpec
from cleanroom.generation import generate, record_seed
from cleanroom.ifeval import read_prompts, score_responses
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST, STOP, clean_completion, few_shot_prompt
from cleanroom.ifeval.scoring import scoring_conditions
from cleanroom.pipeline import shards
from cleanroom.pipeline.common import Context, load_model, progress_bar, resolve_model
from cleanroom.provenance import hash_file


def generate_into(
    writer: Any,
    model: Any,
    tokenizer: Any,
    records: Sequence[Any],
    *,
    gen: GenerationSpec,
    id_prefix: str,
    render: Any,
    parent_ref: Any = None,
    progress: bool = True,
    label: str = "generate",
    budget: Any = None,
    share: shards.Share | None = None,
) -> dict[str, dict[str, Any]]:
    """Generate for every record not yet in *writer*; return ``{key: payload}`` for all records.

    *render* maps a prompt record to the model's input text; *parent_ref* maps it to the parent reference of
    its response (None: no parent, for prompts from outside the run). Batches of ``gen.batch_size`` through
    :func:`cleanroom.generation.generate` (every batch guarded), each record sampled with its own seed,
    :func:`~cleanroom.generation.record_seed` of ``gen.seed`` and its key.

    With *share* (a stage on several ranks, :mod:`cleanroom.pipeline.shards`) every rank calls this with the
    same arguments, *writer* being the stage's on rank 0 and None on the others: each rank generates its
    batches into its part, then rank 0 merges the parts into *writer* in record order. The other ranks
    return ``{}``.
    """

    starts = range(0, len(records), gen.batch_size)
    if share is not None:
        part = share.open(writer)
        _generate_batches(part, model, tokenizer, records, share.batches(len(records), gen.batch_size), gen=gen,
                          id_prefix=id_prefix, render=render, parent_ref=parent_ref,
                          progress=progress and share.world.is_main, label=label, budget=budget)
        share.merge(part, writer, [f"{id_prefix}:{r.key}" for r in records])
        if writer is None:
            return {}
    else:
        _generate_batches(writer, model, tokenizer, records, starts, gen=gen, id_prefix=id_prefix, render=render,
                          parent_ref=parent_ref, progress=progress, label=label, budget=budget)
    return {rec["key"]: rec for rec in read_records(writer.path)}


def _generate_batches(sink: Any, model: Any, tokenizer: Any, records: Sequence[Any], starts: Sequence[int], *,
                      gen: GenerationSpec, id_prefix: str, render: Any, parent_ref: Any, progress: bool, label: str,
                      budget: Any) -> None:
    """Generate the batches of *records* that begin at *starts* into *sink* (a RecordWriter or a rank's part),
    each record not yet in it."""
    mine = [r for start in starts for r in records[start:start + gen.batch_size]]
    done = sum(f"{id_prefix}:{r.key}" in sink for r in mine)
    bar = progress_bar(total=len(mine), initial=done, label=label, unit="prompt", enabled=progress)
    # a record's text depends on its seed alone, and batches are fixed by position in the full record list (not
    # in what is left to do): a partly written batch is generated again whole, so the same rows share the same
    # padded batch, and only its missing records are written
    for start in starts:
        batch = records[start:start + gen.batch_size]
        todo = [r for r in batch if f"{id_prefix}:{r.key}" not in sink]
        if not todo:
            continue
        if budget is not None:
            bar.set_postfix_str(f"${budget.cost_usd:.2f}")
            budget.check(f"{label} batch {start // gen.batch_size + 1}")
        result = generate(
            model, tokenizer, [render(r) for r in batch], max_new_tokens=gen.max_new_tokens,
            temperature=gen.temperature, top_p=gen.top_p, seeds=[record_seed(gen.seed, r.key) for r in batch],
            batch_size=gen.batch_size, stop=[STOP], engine=gen.engine,
        )
        for r, text, count in zip(batch, result.texts, result.token_counts, strict=True):
            sink.write(  # an id already on disk is skipped by the writer
                {"key": r.key, "response": clean_completion(text), "token_count": int(count)},
                parents=[parent_ref(r)] if parent_ref is not None else [], record_id=f"{id_prefix}:{r.key}",
            )
        bar.update(len(todo))
    bar.close()


def score_into(writer: Any, prompts: Sequence[Any], responses: dict[Any, dict[str, Any]], *,
               responses_artifact: str, id_prefix: str, model_refs: Sequence[dict[str, Any]],
               produced_under: dict[str, Any]) -> list[dict]:
    """Score responses and write one verdict per key, parented on its response (and the model files).

    Each verdict carries ``conditions``: the prompt's digest and the scorer's version, plus *produced_under*
    (``model``, ``generation``, ``rendering``), so ``eval compare`` can refuse files that differ in anything
    but the model."""
    by_key = {p.key: p for p in prompts}
    verdicts = score_responses(prompts, {k: v["response"] for k, v in responses.items()})
    for verdict in verdicts:
        key = verdict["key"]
        verdict["conditions"] = scoring_conditions(by_key[key]) | produced_under
        parent = {"artifact": responses_artifact, "sha256": None,
                  "record_id": responses[key]["provenance"]["record_id"]}
        writer.write(verdict, parents=[parent, *model_refs], record_id=f"{id_prefix}:{key}")
    return verdicts


def pool_records(ctx: Context) -> list[Any]:
    """The SFT instruction pool preflight wrote (SFT data takes the first ``data.n_sft``, pairs the next)."""

    return read_prompts(ctx.run.path / "preflight" / "sft_pool.jsonl")


def eval_records(ctx: Context) -> list[Any]:
    """The held-out eval prompts preflight wrote."""

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
    """Generate ``<name>_responses.jsonl`` and ``<name>_verdicts.jsonl`` inside an open stage (on rank 0 of
    several, beside the other ranks' :func:`follow_respond`)."""

    records = eval_records(ctx)
    model, tokenizer, _ = model_bundle or load_model(ctx, adapters=tuple(ctx.run.path / a for a in adapters),
                                                     probe=False)
    responses = _respond(ctx, stage_writer.name, name, stage_writer.jsonl(f"{name}_responses.jsonl"), model,
                         tokenizer, records, gen)
    verdicts = score_into(
        stage_writer.jsonl(f"{name}_verdicts.jsonl"), records, responses,
        responses_artifact=f"{stage_writer.name}/{name}_responses.jsonl",
        id_prefix=f"{stage_writer.name}/{name}_verdict", model_refs=model_refs(ctx, adapters),
        produced_under={"model": {"name": name, "adapters": list(adapters)}, "generation": vars(gen),
                        "rendering": {"few_shot_digest": FEW_SHOT_DIGEST}},
    )
    return verdicts


def follow_respond(ctx: Context, stage: str, name: str, *, adapters: tuple[str, ...], gen: Any) -> None:
    """A rank other than 0: its batches of :func:`respond_and_score`'s responses (rank 0 writes the files)."""

    model, tokenizer, _ = load_model(ctx, adapters=tuple(ctx.run.path / a for a in adapters), probe=False)
    _respond(ctx, stage, name, None, model, tokenizer, eval_records(ctx), gen)


def _respond(ctx: Context, stage: str, name: str, writer: Any, model: Any, tokenizer: Any, records: list[Any],
             gen: Any) -> dict[str, dict[str, Any]]:
    return generate_into(
        writer, model, tokenizer, records, gen=gen,
        parent_ref=lambda r: ctx.run.ref("preflight/eval_prompts.jsonl", f"eval_prompts:{r.key}"),
        id_prefix=f"{stage}/{name}", render=lambda r: few_shot_prompt(r.prompt),
        progress=ctx.progress, label=f"{stage}: {name}", budget=ctx.budget,
        share=shards.share(ctx.run, f"{stage}/{name}_responses.jsonl"),
    )

"""SFT data: the base model answers the SFT instruction pool; the verifiable checks filter the answers.

With ``data.teacher = programmatic`` (the tiny profile: a random model cannot write) the responses
come from :func:`cleanroom.ifeval.teacher.teacher_response` instead, and every record says so in
its ``source`` field and the stage's provenance — never hidden. Survivors become plain string
``prompt``/``completion`` examples (zero-shot completion format; never conversational, so no
template can be applied). Too few survivors is an error with the numbers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from cleanroom.artifacts import atomic_write_bytes, pretty_json, read_records
from cleanroom.errors import InputError
from cleanroom.ifeval import score_record
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST, few_shot_prompt, zero_shot_prompt
from cleanroom.ifeval.teacher import teacher_response
from cleanroom.loader import CleanModelLoader
from cleanroom.pipeline.common import Context, capture, generation_settings, load_model, resolve_model
from cleanroom.pipeline.respond import generate_into, pool_records


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n: unique word n-grams / all word n-grams over the corpus (Li et al. 2016)."""
    grams = [tuple(words[i:i + n]) for t in texts for words in [t.split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def histogram(values: list[int], bins: int = 10) -> dict[str, list]:
    if not values:
        return {"counts": [], "edges": []}
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    return {"counts": [int(c) for c in counts], "edges": [float(e) for e in edges]}


def run_sft_data(ctx: Context) -> dict[str, Any]:

    spec = ctx.spec
    pool = pool_records(ctx)[: spec.data.n_sft]
    teacher = spec.data.teacher
    model, tokenizer, loader_prov, settings = _responder(ctx)
    prov = capture(ctx, "sft_data", loader=loader_prov, generation=settings)
    with ctx.run.stage("sft_data", provenance=prov, inputs=["preflight/sft_pool.jsonl"]) as st:
        gens = st.jsonl("generations.jsonl")
        parent = lambda r: ctx.run.ref("preflight/sft_pool.jsonl", f"sft_pool:{r.key}")  # noqa: E731
        if teacher == "none":
            responses = generate_into(gens, model, tokenizer, pool, gen=spec.sft_generation, parent_ref=parent,
                                      id_prefix="sft_data/generation", render=lambda r: few_shot_prompt(r.prompt),
                                      progress=ctx.progress, label="sft_data: base model answers", budget=ctx.budget)
        else:
            responses = _teacher_responses(gens, pool, parent, seed=spec.seed)
        examples = st.jsonl("examples.jsonl")
        kept = _keep_examples(ctx, tokenizer, pool, responses, examples, parent)
        survivors = examples.count
        reasons, types = kept["reasons"], kept["types"]
        stats = {
            "candidates": len(pool), "survivors": survivors, "filtered": dict(reasons), "teacher": teacher,
            "distinct_1": distinct_n(kept["texts"], 1), "distinct_2": distinct_n(kept["texts"], 2),
            "instruction_types": dict(sorted(types.items())), "n_types": len(types),
            "length_tokens": histogram(kept["lengths"]),
        }
        atomic_write_bytes(st.dir / "stats.json", pretty_json(stats))
        if survivors < spec.data.min_sft_survivors:
            raise InputError(
                f"sft_data: only {survivors} of {len(pool)} responses passed the verifiable checks "
                f"(need data.min_sft_survivors={spec.data.min_sft_survivors}); top failures: "
                f"{reasons.most_common(5)}. Use a larger pool (data.n_sft), a better base model, or lower the minimum"
            )
    return stats


def _responder(ctx: Context) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """``(model, tokenizer, loader provenance, generation settings)``: the base model answers with
    ``data.teacher = none``; otherwise the programmatic teacher writes and only the tokenizer is loaded
    (``model`` is None and no engine runs)."""

    spec, gen, teacher = ctx.spec, ctx.spec.sft_generation, ctx.spec.data.teacher
    if teacher == "none":
        model, tokenizer, loader_prov = load_model(ctx, probe=False)
        return model, tokenizer, loader_prov, generation_settings(ctx, "sft_data", model, gen,
                                                                  few_shot_digest=FEW_SHOT_DIGEST, teacher=teacher)

    path, gguf = resolve_model(spec.model, ctx.run.path)
    tokenizer, loader_prov = CleanModelLoader(path, gguf_file=gguf).load_tokenizer()
    return None, tokenizer, loader_prov, vars(gen) | {"few_shot_digest": FEW_SHOT_DIGEST, "teacher": teacher}


def _teacher_responses(gens: Any, pool: list[Any], parent: Any, *, seed: int) -> dict[Any, dict[str, Any]]:
    """The programmatic teacher's response to every pool record, written to *gens* (``{key: record}``)."""

    rng = np.random.default_rng(seed)
    for r in pool:
        rid = f"sft_data/generation:{r.key}"
        text = teacher_response(r, rng)  # drawn for every record so resumed runs draw the same texts
        if rid not in gens:
            gens.write({"key": r.key, "response": text, "source": "programmatic_teacher"},
                       parents=[parent(r)], record_id=rid)
    return {rec["key"]: rec for rec in read_records(gens.path)}


def _keep_examples(ctx: Context, tokenizer: Any, pool: list[Any], responses: dict[Any, dict[str, Any]],
                   examples: Any, parent: Any) -> dict[str, Any]:
    """Write the responses that pass every verifiable check, fit ``sft.train.max_length`` with their EOS and
    hold no EOS inside, as ``prompt``/``completion`` examples; return why the others were dropped
    (``reasons``) and the kept texts, token lengths and instruction types."""

    reasons: Counter[str] = Counter()
    kept_texts: list[str] = []
    lengths: list[int] = []
    types: Counter[str] = Counter()
    eos = tokenizer.eos_token_id
    for r in pool:
        response = responses[r.key]
        verdict = score_record(r, response["response"])
        if not verdict["strict"]["follow_all_instructions"]:
            failed = [i for i, ok in zip(r.instruction_id_list, verdict["strict"]["follow_instruction_list"],
                                         strict=True) if not ok]
            reasons.update(f"failed:{i}" for i in failed)
            continue
        prompt = zero_shot_prompt(r.prompt)
        n_tokens = len(tokenizer(prompt + response["response"])["input_ids"]) + 1
        if n_tokens > ctx.spec.sft.train.max_length:
            reasons["too_long_for_max_length"] += 1  # dropped, never truncated: the EOS must survive
            continue
        if eos in tokenizer(response["response"])["input_ids"]:
            reasons["eos_inside_completion"] += 1
            continue
        examples.write(
            {"key": r.key, "prompt": prompt, "completion": response["response"],
             "instruction_id_list": list(r.instruction_id_list), "source": response.get("source", "base_model")},
            parents=[parent(r), {"artifact": "sft_data/generations.jsonl", "sha256": None,
                                 "record_id": response["provenance"]["record_id"]}],
            record_id=f"sft_data/example:{r.key}",
        )
        kept_texts.append(response["response"])
        lengths.append(n_tokens)
        types.update(r.instruction_id_list)
    return {"reasons": reasons, "texts": kept_texts, "lengths": lengths, "types": types}

"""Preference pairs by critique and rewrite.

For each instruction (pool records not used for SFT): the SFT policy samples several responses;
each is critiqued against its instruction's verifiable constraints and the constitution (a
principles file shipped with the profile, its digest recorded); the best draft is rewritten
(by the SFT model prompted with its critique, or by the programmatic teacher on profiles whose
model cannot write, recorded as such). Chosen is the candidate satisfying the most constraints,
rejected the one satisfying the fewest; a pair is kept only with a strictly positive margin, two
different texts, and both sides passing the guard. Each pair records why it was formed. Under a launcher
every rank samples and rewrites its share of the batches (:func:`follow_pairs`); rank 0 forms the pairs.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cleanroom import distributed, guard
from cleanroom.artifacts import atomic_write_bytes, pretty_json, read_records
from cleanroom.errors import ContaminationError, InputError
from cleanroom.generation import generate, record_seed
from cleanroom.ifeval import score_record
from cleanroom.ifeval.prompting import STOP, clean_completion, few_shot_prompt, zero_shot_prompt
from cleanroom.ifeval.teacher import teacher_response
from cleanroom.pipeline import shards
from cleanroom.pipeline.common import Context, capture, generation_settings, load_model, progress_bar
from cleanroom.pipeline.respond import pool_records
from cleanroom.provenance import hash_file

# Constitution principles a program can check (the file carries the full text and its digest).
_CONTROL = re.compile(r"<\|[a-z_]+\|>|<tool_call>|</tool_call>|^(system|user|assistant)\s*$", re.M)


def constitution_path(ctx: Context) -> Path:
    """``pairs.constitution``: an absolute path as given, a relative one inside the package (where the shipped
    ``constitution.md`` lives, package data of :mod:`cleanroom.pipeline`)."""
    p = Path(ctx.spec.pairs.constitution)
    return p if p.is_absolute() else Path(str(resources.files("cleanroom.pipeline"))) / p


def critique(record: Any, text: str) -> dict[str, Any]:
    """Which verifiable instructions and constitution principles the text violates."""
    verdict = score_record(record, text)
    follows = verdict["strict"]["follow_instruction_list"]
    words = text.split()
    bigrams = list(zip(words, words[1:], strict=False))
    principles = {
        "follow_instructions": all(follows),
        "non_empty": bool(text.strip()),
        "no_chat_markup": _CONTROL.search(text) is None,
        "no_degenerate_repetition": not bigrams or len(set(bigrams)) / len(bigrams) >= 0.3,
    }
    return {
        "satisfied": int(sum(follows)) + int(sum(principles.values())) - int(principles["follow_instructions"]),
        "failed_instructions": [i for i, ok in zip(record.instruction_id_list, follows, strict=True) if not ok],
        "principles": principles,
    }


def rewrite_prompt(instruction: str, draft: str, crit: dict[str, Any]) -> str:
    """Completion-style rewrite request (no chat template, no control tokens)."""
    problems = [f"- does not satisfy: {i}" for i in crit["failed_instructions"]]
    problems += [f"- violates principle: {k}" for k, ok in crit["principles"].items() if not ok and k != "follow_instructions"]
    return (f"Instruction: {instruction}\n\nDraft response:\n{draft}\n\nProblems with the draft:\n"
            + "\n".join(problems or ["- none found"]) + "\n\nImproved response:\n")


def key_seed(key: Any) -> int:
    """A stable 64-bit seed from a record key (the same on every run and resume, unlike its position)."""
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "big")


def run_pairs(ctx: Context) -> dict[str, Any]:

    spec = ctx.spec
    p = spec.pairs
    records = _instructions(ctx)
    constitution = constitution_path(ctx)
    if not constitution.is_file():
        raise InputError(f"pairs.constitution: {constitution} does not exist")
    world = distributed.lead(ctx, "pairs", work="generation sharded by batch")  # the others: follow_pairs
    model, tokenizer, loader_prov = load_model(ctx, adapters=(ctx.run.path / "sft" / "adapter",), probe=False)
    prov = capture(ctx, "pairs", loader=loader_prov, generation=generation_settings(ctx, "pairs", model, p.generation),
                   extra={"constitution": str(constitution), "constitution_sha256": hash_file(constitution),
                          "rewriter": p.rewriter, "distributed": world})
    reasons: dict[str, int] = {}
    with ctx.run.stage("pairs", provenance=prov, inputs=["preflight/sft_pool.jsonl", "sft/adapter", constitution]) as st:
        samples = st.jsonl("samples.jsonl")
        out = st.jsonl("pairs.jsonl")
        _sample_in_shares(ctx, model, tokenizer, records, samples)  # several ranks: every sample is on disk after it
        on_disk = {rec["provenance"]["record_id"]: rec for rec in read_records(samples.path)} if samples.count else {}
        origins, per_batch = _origins(p), _per_batch(p)
        bar = progress_bar(total=len(records), initial=0, label="pairs", unit="instruction", enabled=ctx.progress)
        # batches are fixed by position in the full instruction list, every sample's seed and the teacher's rng by
        # record key, and candidates already on disk are reused: a resumed stage writes exactly the samples and
        # pairs an uninterrupted one would
        for start in range(0, len(records), per_batch):
            batch = records[start:start + per_batch]
            candidates = _batch_candidates(ctx, model, tokenizer, batch, samples, on_disk, origins)
            for r in batch:
                cands = candidates[r.key]
                sample_ids = _write_samples(ctx, samples, r, cands)
                hi, lo, why = _form_pair(ctx, tokenizer, r, cands)
                if why:
                    reasons[why] = reasons.get(why, 0) + 1
                    continue
                out.write(_pair_payload(r, cands[hi], cands[lo]),
                          parents=[{"artifact": "pairs/samples.jsonl", "sha256": None, "record_id": sample_ids[hi]},
                                   {"artifact": "pairs/samples.jsonl", "sha256": None, "record_id": sample_ids[lo]}],
                          record_id=f"pairs/pair:{r.key}")
            bar.set_postfix_str(f"{out.count} pairs, ${ctx.budget.cost_usd:.2f}")
            bar.update(len(batch))
        bar.close()
        stats = {"instructions": len(records), "pairs": out.count, "skipped": reasons,
                 "samples_per_instruction": p.samples_per_instruction, "rewriter": p.rewriter}
        atomic_write_bytes(st.dir / "stats.json", pretty_json(stats))
        if out.count < p.min_pairs:
            raise InputError(f"pairs: only {out.count} valid pairs from {len(records)} instructions (need "
                             f"pairs.min_pairs={p.min_pairs}); skipped: {reasons}")
    return stats


def follow_pairs(ctx: Context) -> None:
    """A rank other than 0: the candidates of its batches of instructions (rank 0 forms the pairs)."""
    records = _instructions(ctx)
    model, tokenizer, _ = load_model(ctx, adapters=(ctx.run.path / "sft" / "adapter",), probe=False)
    _sample_in_shares(ctx, model, tokenizer, records, None)


def _instructions(ctx: Context) -> list[Any]:
    """The pool records that pairs are formed on: the ``pairs.n_instructions`` after SFT's ``data.n_sft``."""
    n_sft, n = ctx.spec.data.n_sft, ctx.spec.pairs.n_instructions
    records = pool_records(ctx)[n_sft: n_sft + n]
    if not records:
        raise InputError(f"pairs: the SFT pool has no instructions beyond the first data.n_sft={n_sft}; "
                         "raise the pool size or lower pairs.n_instructions")
    return records


def _origins(p: Any) -> list[str]:
    """Each instruction's candidates: ``samples_per_instruction`` samples, then the rewrite."""
    rewrite_origin = "rewrite_programmatic_teacher" if p.rewriter == "programmatic" else "rewrite_sft_model"
    return [f"sample_{j}" for j in range(p.samples_per_instruction)] + [rewrite_origin]


def _per_batch(p: Any) -> int:
    """Instructions per generation batch (each sampled ``samples_per_instruction`` times in it)."""
    return max(1, p.generation.batch_size // p.samples_per_instruction)


def _sample_in_shares(ctx: Context, model: Any, tokenizer: Any, records: list[Any], samples: Any) -> None:
    """Under a launcher (every rank calls it; *samples* is the stage's writer on rank 0, None elsewhere): each
    rank writes the candidates of its batches of instructions to its part, and rank 0 merges them into
    ``samples.jsonl`` in instruction order (:mod:`cleanroom.pipeline.shards`), so that the stage's own loop
    finds every candidate on disk. One process: nothing (the loop samples as it goes)."""
    share = shards.share(ctx.run, "pairs/samples.jsonl")
    if share is None:
        return
    origins, per_batch = _origins(ctx.spec.pairs), _per_batch(ctx.spec.pairs)
    part = share.open(samples)
    for start in share.batches(len(records), per_batch):
        batch = records[start:start + per_batch]
        missing = [r for r in batch if any(f"pairs/sample:{r.key}:{o}" not in part for o in origins)]
        fresh = _fresh_candidates(ctx, model, tokenizer, missing, origins)
        for r in missing:
            _write_samples(ctx, part, r, fresh[r.key])
    share.merge(part, samples, [f"pairs/sample:{r.key}:{o}" for r in records for o in origins])


def _batch_candidates(ctx: Context, model: Any, tokenizer: Any, batch: list[Any], samples: Any,
                      on_disk: dict[str, dict[str, Any]], origins: list[str]) -> dict[Any, list[dict[str, Any]]]:
    """Each record's candidates: read back from *on_disk* when all its samples were written (a resumed stage),
    else sampled afresh (:func:`_fresh_candidates`, the batch's missing records in one call)."""
    missing = {r.key for r in batch if any(f"pairs/sample:{r.key}:{o}" not in samples for o in origins)}
    fresh = _fresh_candidates(ctx, model, tokenizer, [r for r in batch if r.key in missing], origins)
    return {r.key: fresh[r.key] if r.key in fresh else
            [{"text": on_disk[f"pairs/sample:{r.key}:{o}"]["response"], "origin": o,
              "critique": on_disk[f"pairs/sample:{r.key}:{o}"]["critique"]} for o in origins]
            for r in batch}


def _write_samples(ctx: Context, samples: Any, record: Any, cands: list[dict[str, Any]]) -> list[str]:
    """Write each candidate to ``samples.jsonl`` (one already there is skipped); return their record ids."""
    sample_ids = []
    for c in cands:
        sid = f"pairs/sample:{record.key}:{c['origin']}"
        samples.write({"key": record.key, "response": c["text"], "origin": c["origin"], "critique": c["critique"]},
                      parents=[ctx.run.ref("preflight/sft_pool.jsonl", f"sft_pool:{record.key}")], record_id=sid)
        sample_ids.append(sid)
    return sample_ids


def _form_pair(ctx: Context, tokenizer: Any, record: Any, cands: list[dict[str, Any]]) -> tuple[int, int, str | None]:
    """``(chosen, rejected, why)``: the indices of the candidates satisfying the most and the fewest checks, and
    why no pair is kept (None: kept) — no positive margin, the same text twice, or a guard failure."""

    order = sorted(range(len(cands)), key=lambda k: cands[k]["critique"]["satisfied"])
    lo, hi = order[0], order[-1]
    chosen, rejected = cands[hi], cands[lo]
    if chosen["critique"]["satisfied"] - rejected["critique"]["satisfied"] <= 0:
        return hi, lo, "no_margin"
    if chosen["text"].strip() == rejected["text"].strip():
        return hi, lo, "identical_texts"
    try:
        guard.check_pair(tokenizer, zero_shot_prompt(record.prompt), chosen["text"], rejected["text"],
                         max_length=ctx.spec.dpo.train.max_length, record=f"pair {record.key}")
    except ContaminationError as exc:  # a guard failure drops the pair and is counted, never trained on
        return hi, lo, f"guard: {type(exc).__name__}"
    return hi, lo, None


def _pair_payload(record: Any, chosen: dict[str, Any], rejected: dict[str, Any]) -> dict[str, Any]:
    """One preference pair, with why it was formed."""

    return {"key": record.key, "prompt": zero_shot_prompt(record.prompt), "chosen": chosen["text"],
            "rejected": rejected["text"], "margin": chosen["critique"]["satisfied"] - rejected["critique"]["satisfied"],
            "why": {"chosen": chosen["origin"], "rejected": rejected["origin"],
                    "chosen_satisfied": chosen["critique"]["satisfied"],
                    "rejected_satisfied": rejected["critique"]["satisfied"],
                    "rejected_failed": rejected["critique"]["failed_instructions"]}}


def _fresh_candidates(ctx: Context, model: Any, tokenizer: Any, records: list[Any],
                      origins: list[str]) -> dict[Any, list[dict[str, Any]]]:
    """The candidates of *records*: ``samples_per_instruction`` sampled drafts each (seeded per record and
    sample), critiqued, then the best draft rewritten — by the SFT model, all rewrites of the batch in one
    greedy call, or by the programmatic teacher (its rng seeded by record key)."""
    if not records:
        return {}
    p, gen = ctx.spec.pairs, ctx.spec.pairs.generation
    k = p.samples_per_instruction
    ctx.budget.check("pairs batch")
    drafts = generate(model, tokenizer, [few_shot_prompt(r.prompt) for r in records for _ in range(k)],
                      max_new_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                      seeds=[record_seed(gen.seed, f"{r.key}:{j}") for r in records for j in range(k)],
                      batch_size=gen.batch_size, stop=[STOP], engine=gen.engine).texts
    cands: dict[Any, list[dict[str, Any]]] = {}
    for i, r in enumerate(records):
        own = [clean_completion(t) for t in drafts[i * k:(i + 1) * k]]
        cands[r.key] = [{"text": t, "origin": f"sample_{j}", "critique": critique(r, t)} for j, t in enumerate(own)]
    best = {r.key: max(cands[r.key], key=lambda c: c["critique"]["satisfied"]) for r in records}
    if p.rewriter == "programmatic":
        rewrites = [teacher_response(r, np.random.default_rng([ctx.spec.seed + 1, key_seed(r.key)])) for r in records]
    else:
        rewrites = [clean_completion(t) for t in generate(
            model, tokenizer, [rewrite_prompt(r.prompt, best[r.key]["text"], best[r.key]["critique"]) for r in records],
            max_new_tokens=gen.max_new_tokens, temperature=0.0, batch_size=gen.batch_size, stop=[STOP],
            engine=gen.engine).texts]
    for r, text in zip(records, rewrites, strict=True):
        cands[r.key].append({"text": text, "origin": origins[-1], "critique": critique(r, text)})
    return cands

"""The embedded eval set and the disjoint SFT instruction pool: a seeded, versioned generator.

Both sets come from the generator's own task templates, topics and instruction phrasings
(:mod:`cleanroom.ifeval.templates`). They are disjoint by construction (topics are split in two, the
eval set and the pool use different task templates and different wordings of every instruction) and by
check: :func:`check_overlap` proves no prompt and no word 13-gram is shared (13-grams as in the GPT-3
contamination study, Brown et al. 2020 §C). The generator's digest (sha256 over the sha256 of the
templates' source and of this file's) goes into provenance, so a changed template is a changed eval set.

Combinations are restricted so every prompt is satisfiable: at most one structural instruction
(sections, bullets, paragraphs, two responses, JSON, fixed answer, repeat-the-request), at most one
case instruction, and the explicit conflicts in ``_CONFLICTS``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cleanroom.artifacts import pretty_json, write_records
from cleanroom.errors import ContaminationError, InputError
from cleanroom.fs import OutputGroup, check_outputs, refuse_replacing_foreign
from cleanroom.ifeval.io import PromptRecord, produced_by, prompt_record_from_dict
from cleanroom.ifeval.templates import (
    COMMON_LETTERS,
    END_PHRASES,
    EVAL_TASKS,
    FIRST_WORDS,
    GENERATED_TYPES,
    KEYWORDS,
    POOL_TASKS,
    RARE_LETTERS,
    TOPICS,
    WORDINGS,
)
from cleanroom.provenance import canonical_json, sha256_hex

GENERATOR_VERSION = "1"
#: the generator's sources: the templates it composes prompts from, and this module that composes them
_GENERATOR_SOURCES = (Path(__file__).with_name("templates.py"), Path(__file__))
GENERATOR_DIGEST = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest()
                                            for p in _GENERATOR_SOURCES)).hexdigest()
EVAL_KEY_BASE = 100_000
POOL_KEY_BASE = 200_000

_STRUCTURE = {
    "combination:repeat_prompt", "combination:two_responses", "detectable_format:constrained_response",
    "detectable_format:json_format", "detectable_format:multiple_sections",
    "detectable_format:number_bullet_lists", "length_constraints:nth_paragraph_first_word",
    "length_constraints:number_paragraphs",
}
_CASE = {"change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase"}
_CONFLICTS = {
    frozenset(p)
    for p in [
        ("detectable_format:json_format", "startend:quotation"),
        ("detectable_format:json_format", "startend:end_checker"),
        ("detectable_format:constrained_response", "change_case:english_lowercase"),
        ("detectable_format:constrained_response", "change_case:english_capital"),
        ("detectable_format:multiple_sections", "change_case:english_lowercase"),
        ("detectable_format:multiple_sections", "change_case:english_capital"),
        ("detectable_format:multiple_sections", "change_case:capital_word_frequency"),
        ("combination:repeat_prompt", "change_case:english_lowercase"),
        ("combination:repeat_prompt", "change_case:english_capital"),
        ("combination:repeat_prompt", "change_case:capital_word_frequency"),
        ("combination:repeat_prompt", "keywords:letter_frequency"),
        ("combination:repeat_prompt", "keywords:frequency"),
        ("combination:repeat_prompt", "keywords:forbidden_words"),
        ("combination:repeat_prompt", "startend:quotation"),
        ("combination:repeat_prompt", "length_constraints:number_sentences"),
        ("combination:repeat_prompt", "length_constraints:number_words"),
        ("keywords:existence", "keywords:forbidden_words"),
        ("keywords:existence", "keywords:frequency"),
        ("keywords:forbidden_words", "keywords:frequency"),
    ]
}


def _compatible(chosen: list[str], candidate: str) -> bool:
    if candidate in chosen:
        return False
    if candidate in _STRUCTURE and any(c in _STRUCTURE for c in chosen):
        return False
    if candidate in _CASE and any(c in _CASE for c in chosen):
        return False
    return not any(frozenset((c, candidate)) in _CONFLICTS for c in chosen)


def _pick(rng: np.random.Generator, items: list) -> Any:
    return items[int(rng.integers(len(items)))]


def _kwargs_for(iid: str, rng: np.random.Generator) -> dict[str, Any]:
    rel = _pick(rng, ["less than", "at least"])
    if iid == "change_case:capital_word_frequency":
        return {"capital_relation": rel, "capital_frequency": int(rng.integers(3, 9))}
    if iid == "detectable_content:number_placeholders":
        return {"num_placeholders": int(rng.integers(1, 5))}
    if iid == "detectable_content:postscript":
        return {"postscript_marker": _pick(rng, ["P.S.", "P.P.S"])}
    if iid == "detectable_format:multiple_sections":
        return {"num_sections": int(rng.integers(2, 5)), "section_spliter": _pick(rng, ["SECTION", "Section"])}
    if iid == "detectable_format:number_bullet_lists":
        return {"num_bullets": int(rng.integers(2, 6))}
    if iid == "detectable_format:number_highlighted_sections":
        return {"num_highlights": int(rng.integers(1, 4))}
    if iid == "keywords:existence":
        idx = rng.choice(len(KEYWORDS), size=2, replace=False)
        return {"keywords": [KEYWORDS[int(i)] for i in idx]}
    if iid == "keywords:forbidden_words":
        idx = rng.choice(len(KEYWORDS), size=2, replace=False)
        return {"forbidden_words": [KEYWORDS[int(i)] for i in idx]}
    if iid == "keywords:frequency":
        return {"keyword": _pick(rng, KEYWORDS), "relation": rel, "frequency": int(rng.integers(1, 4))}
    if iid == "keywords:letter_frequency":
        if rel == "less than":
            return {"letter": _pick(rng, RARE_LETTERS), "let_relation": rel, "let_frequency": int(rng.integers(1, 4))}
        return {"letter": _pick(rng, COMMON_LETTERS), "let_relation": rel, "let_frequency": int(rng.integers(5, 16))}
    if iid == "length_constraints:nth_paragraph_first_word":
        n = int(rng.integers(2, 5))
        return {"num_paragraphs": n, "nth_paragraph": int(rng.integers(1, n + 1)), "first_word": _pick(rng, FIRST_WORDS)}
    if iid == "length_constraints:number_paragraphs":
        return {"num_paragraphs": int(rng.integers(2, 5))}
    if iid == "length_constraints:number_sentences":
        if rel == "less than":
            return {"relation": rel, "num_sentences": int(rng.integers(8, 15))}
        return {"relation": rel, "num_sentences": int(rng.integers(2, 10))}
    if iid == "length_constraints:number_words":
        if rel == "less than":
            return {"relation": rel, "num_words": int(rng.integers(12, 31)) * 10}
        return {"relation": rel, "num_words": int(rng.integers(4, 26)) * 10}
    if iid == "startend:end_checker":
        return {"end_phrase": _pick(rng, END_PHRASES)}
    return {}


def _describe(iid: str, kwargs: Mapping[str, Any], variant: int) -> str:
    fields = dict(kwargs)
    if "keywords" in fields:
        fields["keywords_text"] = " and ".join(fields["keywords"])
    if "forbidden_words" in fields:
        fields["forbidden_text"] = " or ".join(fields["forbidden_words"])
    return WORDINGS[iid][variant].format(**fields)


def generate_prompts(n: int, *, seed: int, split: str) -> list[PromptRecord]:
    """``n`` prompts for ``split`` ("eval" or "pool") with 1–3 compatible instructions each."""
    if split not in ("eval", "pool"):
        raise InputError(f"split must be 'eval' or 'pool', got {split!r}")
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    variant = 0 if split == "eval" else 1
    topics = TOPICS[variant::2]
    tasks = EVAL_TASKS if split == "eval" else POOL_TASKS
    key_base = EVAL_KEY_BASE if split == "eval" else POOL_KEY_BASE
    rng = np.random.default_rng([seed, variant, int(GENERATOR_VERSION)])
    records: list[PromptRecord] = []
    seen: set[str] = set()
    attempts = 0
    while len(records) < n:
        attempts += 1
        if attempts > 50 * n:
            raise InputError(f"could not generate {n} distinct {split} prompts; too few templates/topics")
        # Cycle the types so all are covered evenly; then add 0–2 compatible extras.
        first = GENERATED_TYPES[(len(records) + int(rng.integers(len(GENERATED_TYPES)))) % len(GENERATED_TYPES)]
        chosen = [first]
        for _ in range(int(rng.integers(0, 3))):
            options = [t for t in GENERATED_TYPES if _compatible(chosen, t)]
            if options:
                chosen.append(_pick(rng, options))
        # repeat_prompt goes last so the request it repeats is everything before it.
        chosen.sort(key=lambda t: t == "combination:repeat_prompt")
        task = _pick(rng, tasks).format(topic=_pick(rng, topics))
        kwargs = [_kwargs_for(t, rng) for t in chosen]
        parts = [task]
        for t, kw in zip(chosen, kwargs, strict=True):
            if t == "combination:repeat_prompt":
                kw["prompt_to_repeat"] = " ".join(parts)
            parts.append(_describe(t, kw, variant))
        prompt = " ".join(parts)
        if prompt in seen:
            continue
        seen.add(prompt)
        obj = {"key": key_base + len(records), "prompt": prompt, "instruction_id_list": chosen, "kwargs": kwargs}
        records.append(prompt_record_from_dict(obj, where=f"generated {split} prompt {obj['key']}"))
    return records


# ------------------------------------------------------------------------------------------- overlap

def _text_of(item: Any) -> str:
    if isinstance(item, PromptRecord):
        return item.prompt
    if isinstance(item, Mapping):
        return str(item["prompt"])
    if isinstance(item, str):
        return item
    raise InputError(f"expected a prompt string, mapping or PromptRecord, got {type(item).__name__}")


def _normalize(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of lowercased ``\\w+`` tokens (a text shorter than n gives its whole token tuple)."""
    words = _normalize(text)
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def check_overlap(eval_prompts: Iterable[Any], pool_prompts: Iterable[Any], n: int = 13) -> None:
    """Raise ContaminationError if the sets share a prompt (after normalisation) or a word ``n``-gram.

    InputError if either set is empty or ``n < 1``.
    """
    if n < 1:
        raise InputError(f"n-gram length must be >= 1, got {n}")
    eval_texts = [_text_of(p) for p in eval_prompts]
    pool_texts = [_text_of(p) for p in pool_prompts]
    if not eval_texts or not pool_texts:
        raise InputError("overlap check needs a non-empty eval set and a non-empty pool")
    eval_norm = {" ".join(_normalize(t)): i for i, t in enumerate(eval_texts)}
    for j, t in enumerate(pool_texts):
        i = eval_norm.get(" ".join(_normalize(t)))
        if i is not None:
            raise ContaminationError(
                f"pool prompt {j} is eval prompt {i} ({t[:60]!r}...); regenerate the pool or drop the prompt"
            )
    index: dict[tuple[str, ...], int] = {}
    for i, t in enumerate(eval_texts):
        for g in ngrams(t, n):
            index.setdefault(g, i)
    for j, t in enumerate(pool_texts):
        for g in ngrams(t, n):
            if g in index:
                raise ContaminationError(
                    f"pool prompt {j} shares the {n}-gram {' '.join(g)!r} with eval prompt {index[g]}; "
                    "the SFT pool must not overlap the eval set"
                )


def _record_id(name: str, payload: dict[str, Any]) -> str:
    return f"{name}:{payload['key']}"


def make_eval_set(out_dir: str | Path, *, seed: int = 0, n_eval: int = 300, n_pool: int = 600) -> dict[str, Any]:
    """Write ``eval_prompts.jsonl`` and ``sft_pool.jsonl`` under ``out_dir``; return their digests.

    The pool is checked against the eval set with :func:`check_overlap` before anything is written.
    Each file is written atomically (temp file, fsync, rename), both replaced together
    (:class:`cleanroom.fs.OutputGroup`), by :func:`cleanroom.artifacts.write_records`, every record with
    its provenance block: record id ``eval_prompts:<key>`` / ``sft_pool:<key>``, and a producer naming this
    generator's digest. The producer's ``provenance_sha256`` is the digest of the returned ``provenance``
    (generator version and digest, seed, sizes) — no clock or machine in it, so the same arguments give the
    same bytes.
    """
    with OutputGroup() as group:
        return _stage_eval_set(Path(out_dir), group, seed=seed, n_eval=n_eval, n_pool=n_pool)


def _stage_eval_set(out: Path, group: OutputGroup, *, seed: int, n_eval: int, n_pool: int) -> dict[str, Any]:
    """:func:`make_eval_set`'s work, its two files written into *group* (renamed when the group ends)."""
    if n_eval < 1 or n_pool < 1:
        raise InputError(f"n_eval and n_pool must be >= 1, got {n_eval}, {n_pool}")
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}")
    check_outputs({f"eval set file {name}": out / name for name in _SET_FILES}, {})  # before any is replaced
    for name, producer_name in _SET_FILES.items():
        refuse_replacing_foreign(f"eval set file {name}", out / name,
                                 functools.partial(produced_by, stage=producer_name), "a file of an eval set")
    eval_set = generate_prompts(n_eval, seed=seed, split="eval")
    pool = generate_prompts(n_pool, seed=seed, split="pool")
    check_overlap(eval_set, pool, n=13)
    settings = {"seed": seed, "n_eval": n_eval, "n_pool": n_pool}
    provenance = {"generator": __name__, "generator_version": GENERATOR_VERSION, "generator_digest": GENERATOR_DIGEST,
                  **settings}
    producer = {"stage": "eval_make_set", "run_id": None, "config_sha256": sha256_hex(canonical_json(settings)),
                "provenance_sha256": sha256_hex(canonical_json(provenance)), "generator_digest": GENERATOR_DIGEST}
    digests = {}

    def write(path: Path, data: bytes) -> None:
        group.write(path, data)
        digests[f"{path.stem}_sha256"] = sha256_hex(data)  # the bytes the file will hold once renamed

    for name, records in (("eval_prompts", eval_set), ("sft_pool", pool)):
        write_records(out / f"{name}.jsonl", [r.to_dict() for r in records], producer=producer,
                      record_id_of=functools.partial(_record_id, name), write=write)
    covered = sorted({i for r in eval_set for i in r.instruction_id_list})
    return {
        "generator_version": GENERATOR_VERSION,
        "generator_digest": GENERATOR_DIGEST,
        "seed": seed,
        "n_eval": len(eval_set),
        "n_pool": len(pool),
        **digests,
        "types_covered": covered,
        "provenance": provenance,
    }


#: The files of an eval set directory (a failure after one of them was replaced would leave a mixed set),
#: each with the producer its provenance names, which tells an earlier set's file from a user's.
_SET_FILES = {"eval_prompts.jsonl": "eval_make_set", "sft_pool.jsonl": "eval_make_set", "eval_set.json": __name__}


def write_eval_set(out_dir: str | Path, *, seed: int = 0, n_eval: int = 300, n_pool: int = 600) -> dict[str, Any]:
    """:func:`make_eval_set`, plus its returned digests and sizes in ``eval_set.json`` beside the two files
    (``cleanroom eval make-set``); the three files are replaced together."""

    with OutputGroup() as group:
        info = _stage_eval_set(Path(out_dir), group, seed=seed, n_eval=n_eval, n_pool=n_pool)
        group.write(Path(out_dir) / "eval_set.json", pretty_json(info))
    return info

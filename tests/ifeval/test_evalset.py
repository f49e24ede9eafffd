"""The eval-set generator, the overlap check, the programmatic teacher, degrade_response and the few-shot prompt."""

from __future__ import annotations

import numpy as np
import pytest

from cleanroom.errors import ContaminationError, InputError
from cleanroom.ifeval import (
    FEW_SHOT_DIGEST,
    PromptRecord,
    build_instruction,
    check_overlap,
    degrade_response,
    few_shot_prompt,
    generate_prompts,
    make_eval_set,
    score_record,
    teacher_response,
)
from cleanroom.ifeval.prompting import EXAMPLES, STOP, zero_shot_prompt


@pytest.fixture(scope="module")
def eval_set():
    return generate_prompts(300, seed=0, split="eval")


def test_make_eval_set_is_deterministic_and_covers_types(tmp_path):
    a = make_eval_set(tmp_path / "a", seed=0, n_eval=300, n_pool=600)
    b = make_eval_set(tmp_path / "b", seed=0, n_eval=300, n_pool=600)
    c = make_eval_set(tmp_path / "c", seed=1, n_eval=300, n_pool=600)
    assert a == b
    assert c["eval_prompts_sha256"] != a["eval_prompts_sha256"]
    assert (tmp_path / "a" / "eval_prompts.jsonl").read_bytes() == (tmp_path / "b" / "eval_prompts.jsonl").read_bytes()
    assert a["n_eval"] == 300 and a["n_pool"] == 600 and len(a["types_covered"]) >= 15


def test_generator_digest_covers_the_templates_and_the_builder():
    """A changed template is a changed eval set: the digest is sha256 over the sha256 of
    ``ifeval/templates.py`` then of ``ifeval/evalset.py``, so an edit to either file changes it."""
    import hashlib
    from pathlib import Path

    from cleanroom.ifeval import GENERATOR_DIGEST, evalset, templates

    parts = [hashlib.sha256(Path(m.__file__).read_bytes()).digest() for m in (templates, evalset)]
    assert GENERATOR_DIGEST == hashlib.sha256(b"".join(parts)).hexdigest()
    assert GENERATOR_DIGEST != hashlib.sha256(Path(evalset.__file__).read_bytes()).hexdigest()


def test_each_prompt_has_one_to_three_instructions(eval_set):
    assert all(1 <= len(r.instruction_id_list) <= 3 for r in eval_set)
    assert len({r.prompt for r in eval_set}) == 300


def test_overlap_check_passes_on_generated_and_catches_shared_ngram(eval_set):
    pool = generate_prompts(600, seed=0, split="pool")
    check_overlap(eval_set, pool)
    long_one = next(r.prompt for r in eval_set if len(r.prompt.split()) >= 16)
    leaked = "Please answer this: " + " ".join(long_one.split()[2:15]) + " thanks"  # exactly 13 shared words
    with pytest.raises(ContaminationError, match="13-gram"):
        check_overlap(eval_set, [p.prompt for p in pool[:10]] + [leaked])
    check_overlap(eval_set, ["Please answer this: " + " ".join(long_one.split()[2:14]) + " thanks"])  # 12 words
    with pytest.raises(ContaminationError, match="is eval prompt 5"):
        check_overlap(eval_set, [eval_set[5].prompt.upper()])
    with pytest.raises(InputError):
        check_overlap([], pool)


def test_teacher_satisfies_every_generated_eval_prompt_and_degrade_violates(eval_set):
    rng = np.random.default_rng(0)
    for r in eval_set:
        text = teacher_response(r, rng)
        assert score_record(r, text)["strict"]["follow_all_instructions"], (r.key, text)
    for r in eval_set[:60]:
        text = teacher_response(r, rng)
        for iid, kw in zip(r.instruction_id_list, r.kwargs, strict=True):
            bad = degrade_response(text, (iid, kw), rng)
            assert not build_instruction(iid, kw)(bad), (iid, bad)


def test_teacher_refuses_contradictions():
    rec = PromptRecord(1, "p", ("change_case:english_lowercase", "change_case:english_capital"), ({}, {}))
    with pytest.raises(InputError, match="cannot satisfy"):
        teacher_response(rec, np.random.default_rng(0))


def test_few_shot_examples_follow_their_instructions_and_have_no_control_tokens():
    for i, (prompt, ids, kwargs, response) in enumerate(EXAMPLES):
        v = score_record(PromptRecord(i, prompt, tuple(ids), tuple(kwargs)), response)
        assert v["strict"]["follow_all_instructions"], prompt
    text = few_shot_prompt("Write a poem.")
    assert text.endswith("### Response:\n") and "<|" not in text and STOP not in text[-30:]
    assert zero_shot_prompt("Write a poem.") in text
    assert len(FEW_SHOT_DIGEST) == 64


def test_make_eval_set_writes_provenance_blocks_atomically(tmp_path, monkeypatch):
    """Every record carries its block (id, content digest, the generator's digest); readers take files with
    blocks and files without (a user's own prompts) alike."""
    import json
    import os

    from cleanroom.artifacts import read_records
    from cleanroom.ifeval import GENERATOR_DIGEST, file_sha256, read_prompts
    from cleanroom.provenance import canonical_json, content_sha256, sha256_hex

    fsynced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: fsynced.append(fd) or real_fsync(fd))
    info = make_eval_set(tmp_path, seed=3, n_eval=12, n_pool=7)
    assert len(fsynced) >= 2  # each file's bytes reach the disk before its rename
    assert info["provenance"] == {"generator": "cleanroom.ifeval.evalset", "generator_version": "1",
                                  "generator_digest": GENERATOR_DIGEST, "seed": 3, "n_eval": 12, "n_pool": 7}
    for name, split, n in (("eval_prompts", "eval", 12), ("sft_pool", "pool", 7)):
        path = tmp_path / f"{name}.jsonl"
        assert info[f"{name}_sha256"] == file_sha256(path)
        records = read_records(path)
        expected = generate_prompts(n, seed=3, split=split)
        assert [r["provenance"]["record_id"] for r in records] == [f"{name}:{r.key}" for r in expected]
        for rec in records:
            block = rec["provenance"]
            assert block["content_sha256"] == content_sha256(rec) and block["parents"] == []
            assert block["producer"]["generator_digest"] == GENERATOR_DIGEST
            assert block["producer"]["provenance_sha256"] == sha256_hex(canonical_json(info["provenance"]))
        assert read_prompts(path) == expected
        bare = tmp_path / f"bare_{name}.jsonl"  # the same prompts as a user would write them: no block
        bare.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "provenance"}) + "\n" for r in records))
        assert read_prompts(bare) == expected
    assert not list(tmp_path.glob(".*.tmp"))

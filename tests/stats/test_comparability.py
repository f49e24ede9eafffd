"""eval compare refuses files produced under different conditions (all but the model), each difference listed."""

from __future__ import annotations

import json

import pytest

from cleanroom.cli import main
from cleanroom.errors import IncomparableError
from cleanroom.hashing import content_sha256
from cleanroom.stats import compare_verdict_files

from .test_compare import CONDITIONS, _write

KEYS = list(range(20))
A = [[k % 2 == 0] for k in KEYS]
B = [[k % 3 != 0] for k in KEYS]
SMALL = {"min_n": 20, "override_reason": "unit fixture"}


def _with(path: str, value):
    """CONDITIONS with one dotted field replaced (or added)."""
    out = json.loads(json.dumps(CONDITIONS))
    node = out
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return out


# (field edited in B's conditions, new value) -> the field the refusal must name
DIFFERENCES = {
    "prompt set": ("prompt_sha256", "q" * 64, "prompt_sha256"),
    "scorer version": ("scorer_sha256", "t" * 64, "scorer_sha256"),
    "prompt rendering": ("rendering.few_shot_digest", "g" * 64, "rendering.few_shot_digest"),
    "max_new_tokens": ("generation.max_new_tokens", 64, "generation.max_new_tokens"),
    "temperature": ("generation.temperature", 0.7, "generation.temperature"),
    "stop": ("generation.stop", [], "generation.stop"),
    "engine (a key only one file records)": ("generation.engine", "vllm", "generation.engine"),
    "not recorded": ("generation.temperature", None, "generation.temperature"),
}


@pytest.mark.parametrize("case", sorted(DIFFERENCES))
def test_a_difference_other_than_the_model_is_refused_naming_it(tmp_path, case) -> None:
    field, value, named = DIFFERENCES[case]
    a = _write(tmp_path / "a.jsonl", KEYS, A)
    b = _write(tmp_path / "b.jsonl", KEYS, B, conditions=_with(field, value) | {"model": {"path": "b"}})
    with pytest.raises(IncomparableError, match=f"— {named}: 20 key") as err:
        compare_verdict_files([a, b], **SMALL)
    assert err.value.exit_code == 1
    rows = compare_verdict_files([a, b], allow_differences=[field.split(".")[0]], difference_reason="ablation",
                                 **SMALL)
    assert rows[0].allowed_differences and rows[0].allowed_differences[0].startswith(named)


def test_one_differing_key_is_enough_and_a_file_without_conditions_is_refused(tmp_path) -> None:
    a = _write(tmp_path / "a.jsonl", KEYS, A)
    b = _write(tmp_path / "b.jsonl", KEYS, B)
    lines = b.read_text().splitlines(keepends=True)
    rec = json.loads(lines[7])
    rec["conditions"]["generation"]["max_new_tokens"] = 1
    rec["provenance"]["content_sha256"] = content_sha256(rec)  # written so, not edited afterwards
    lines[7] = json.dumps(rec) + "\n"
    b.write_text("".join(lines))
    with pytest.raises(IncomparableError, match=r"generation.max_new_tokens: 1 key\(s\), e.g. key 7: a=256 vs b=1"):
        compare_verdict_files([a, b], **SMALL)
    bare = _write(tmp_path / "bare.jsonl", KEYS, B, conditions=False)
    with pytest.raises(IncomparableError, match="conditions: not recorded in bare"):
        compare_verdict_files([a, bare], **SMALL)


def test_only_the_model_differs_and_the_result_says_what_was_held_equal(tmp_path, capsys) -> None:
    a = _write(tmp_path / "a.jsonl", KEYS, A)
    b = _write(tmp_path / "b.jsonl", KEYS, B)
    row = compare_verdict_files([a, b], **SMALL)[0]
    assert row.held_equal == ("generation.max_new_tokens", "generation.seed", "generation.stop",
                              "generation.temperature", "prompt_sha256", "rendering.few_shot_digest", "scorer_sha256")
    assert row.allowed_differences == ()
    assert main(["eval", "compare", str(a), str(b), "--min-n", "20", "--override-reason", "unit fixture"]) == 0
    assert "Held equal across the files: generation.max_new_tokens" in capsys.readouterr().out


def test_cli_refuses_with_exit_1_and_accepts_a_named_difference_with_a_reason(tmp_path, capsys) -> None:
    a = _write(tmp_path / "a.jsonl", KEYS, A)
    b = _write(tmp_path / "b.jsonl", KEYS, B, conditions=_with("generation.temperature", 0.7) | {"model": {}})
    base = ["eval", "compare", str(a), str(b), "--min-n", "20", "--override-reason", "unit fixture"]
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "IncomparableError" in err and "generation.temperature" in err and "a=0.0 vs b=0.7" in err
    assert main([*base, "--allow-difference", "generation.temperature"]) == 2  # no reason given
    assert main([*base, "--allow-difference", "generation.seed", "--difference-reason", "x"]) == 2  # seed is equal
    capsys.readouterr()
    args = [*base, "--allow-difference", "generation.temperature", "--difference-reason", "sampling ablation"]
    assert main([*args, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["difference_reason"] == "sampling ablation" and row["override_reason"] == "unit fixture"
    assert row["allowed_differences"] == ["generation.temperature: 20 key(s), e.g. key 0: a=0.0 vs b=0.7"]
    assert main(args) == 0
    assert "Differences accepted by override (sampling ablation): generation.temperature" in capsys.readouterr().out


def test_eval_score_records_conditions_so_a_changed_prompt_set_is_caught(tmp_path, capsys) -> None:
    def prompts(path, text):
        path.write_text("".join(json.dumps({"key": k, "prompt": text.format(k), "instruction_id_list":
                                            ["punctuation:no_comma"], "kwargs": [{}]}) + "\n" for k in KEYS))
        return path

    responses = tmp_path / "r.jsonl"
    responses.write_text("".join(json.dumps({"key": k, "response": "no commas here",
                                             "generation": {"temperature": 0.0}, "rendering": "few-shot"}) + "\n"
                                 for k in KEYS))
    p1, p2 = prompts(tmp_path / "p1.jsonl", "Write about {}."), prompts(tmp_path / "p2.jsonl", "Describe {}.")
    for p, out in ((p1, "v1.jsonl"), (p1, "v2.jsonl"), (p2, "v3.jsonl")):
        assert main(["eval", "score", "--prompts", str(p), "--responses", str(responses),
                     "--out", str(tmp_path / out)]) == 0
    record = json.loads((tmp_path / "v1.jsonl").read_text().splitlines()[0])
    assert set(record["conditions"]) == {"prompt_sha256", "scorer_sha256", "model", "generation", "rendering"}
    small = ["--min-n", "20", "--override-reason", "unit fixture"]
    assert main(["eval", "compare", str(tmp_path / "v1.jsonl"), str(tmp_path / "v2.jsonl"), *small]) == 0
    capsys.readouterr()
    assert main(["eval", "compare", str(tmp_path / "v1.jsonl"), str(tmp_path / "v3.jsonl"), *small]) == 1
    assert "prompt_sha256: 20 key(s)" in capsys.readouterr().err


def test_a_required_condition_left_out_of_every_record_is_refused(tmp_path) -> None:
    """prompt_sha256 and scorer_sha256 are required: left out of the conditions block altogether (not null) in
    every file, they were never looked at, and the files compared with no prompt or scorer check."""
    bare = {k: v for k, v in CONDITIONS.items() if k not in ("prompt_sha256", "scorer_sha256")}
    a = _write(tmp_path / "a.jsonl", KEYS, A, conditions=bare)
    b = _write(tmp_path / "b.jsonl", KEYS, B, conditions=bare)
    with pytest.raises(IncomparableError, match="prompt_sha256"):
        compare_verdict_files([a, b], **SMALL)

"""Verdict files as eval compare reads them: each record checked against its own digest; one file is never
compared with itself; identical outputs in two files are compared, with a note."""

from __future__ import annotations

import json
import os

import pytest

from cleanroom.cli import main
from cleanroom.errors import IncomparableError, InputError
from cleanroom.stats import compare_verdict_files, format_markdown

from .test_compare import CONDITIONS, _write

KEYS = list(range(200))


def _pair(tmp_path, **kw):
    a = _write(tmp_path / "a.jsonl", KEYS, [[k % 2 == 0] for k in KEYS], **kw)
    b = _write(tmp_path / "b.jsonl", KEYS, [[k % 3 == 0] for k in KEYS], **kw)
    return a, b


def test_the_same_file_twice_is_refused_by_path_link_or_hard_link(tmp_path, capsys) -> None:
    """Before: `eval compare a.jsonl a.jsonl` printed "no detectable difference" and exited 0."""
    a, b = _pair(tmp_path)
    (tmp_path / "sym.jsonl").symlink_to(a)
    os.link(a, tmp_path / "hard.jsonl")
    for other in (a, tmp_path / "sub" / ".." / "a.jsonl", tmp_path / "sym.jsonl", tmp_path / "hard.jsonl"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(InputError, match=r"\(file 2\) is the same file as .*a\.jsonl \(file 1\)"):
            compare_verdict_files([a, other])
    with pytest.raises(InputError, match=r"\(file 3\) is the same file as .*b\.jsonl \(file 2\)"):
        compare_verdict_files([a, b, b])
    assert main(["eval", "compare", str(a), str(a)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "always shows no difference" in err


def test_identical_outputs_in_two_files_are_compared_with_a_note(tmp_path, capsys) -> None:
    """Two files, one content: the same outputs scored twice, or an adapter still at its zero initialisation.
    A real outcome, so no refusal, but the reader is told."""
    a, _ = _pair(tmp_path)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(a.read_bytes())
    row = compare_verdict_files([a, copy])[0]
    assert row.identical_outputs and row.verdict.startswith("no detectable difference")
    note = "a and copy hold the same responses and verdicts at every key"
    assert note in format_markdown([row]) and any(n.startswith(note) for n in row.to_json()["notes"])
    _, b = _pair(tmp_path)
    assert not compare_verdict_files([a, b])[0].identical_outputs
    rows = compare_verdict_files([b, a, copy])  # only the a-copy pair carries it
    assert [r.identical_outputs for r in rows] == [False, True, False]
    assert main(["eval", "compare", str(a), str(copy)]) == 0 and note in capsys.readouterr().out


def test_a_record_edited_after_it_was_written_is_refused_naming_file_and_line(tmp_path, capsys) -> None:
    """Before: b, sampled at temperature 0.7, with its conditions edited to say 0.0, was declared comparable
    with a (greedy) and given a verdict."""
    a = _write(tmp_path / "a.jsonl", KEYS, [[k % 2 == 0] for k in KEYS])
    b = _write(tmp_path / "b.jsonl", KEYS, [[k % 3 == 0] for k in KEYS],
               conditions=CONDITIONS | {"generation": CONDITIONS["generation"] | {"temperature": 0.7}})
    with pytest.raises(IncomparableError, match="generation.temperature"):
        compare_verdict_files([a, b])
    recs = [json.loads(line) for line in b.read_text().splitlines()]
    for rec in recs:  # the edit: make b look greedy, leave the digests its writer computed
        rec["conditions"]["generation"]["temperature"] = 0.0
    b.write_text("".join(json.dumps(rec) + "\n" for rec in recs))
    with pytest.raises(InputError, match=r"b\.jsonl line 1: provenance\.content_sha256 is .* was edited") as exc:
        compare_verdict_files([a, b])
    assert exc.value.exit_code == 2
    assert main(["eval", "compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "b.jsonl line 1" in err
    b = _write(tmp_path / "b.jsonl", KEYS, [[k % 3 == 0] for k in KEYS])  # written afresh
    lines = b.read_text().splitlines(keepends=True)
    rec = json.loads(lines[1])  # key 1: strict fails; make it pass, consistently
    rec["strict"] = {"follow_all_instructions": True, "follow_instruction_list": [True]}
    lines[1] = json.dumps(rec) + "\n"
    b.write_text("".join(lines))
    with pytest.raises(InputError, match=r"b\.jsonl line 2: provenance\.content_sha256"):
        compare_verdict_files([a, b])  # a flipped verdict is caught the same way


def test_records_without_a_digest_are_named_as_unverified(tmp_path) -> None:
    a, b = _pair(tmp_path, digest=False)
    row = compare_verdict_files([a, b])[0]
    assert row.unverified == ("a (200 of 200 records)", "b (200 of 200 records)")
    assert ("Conditions taken as written, with no record digest to check them against (records without "
            "provenance.content_sha256): a (200 of 200 records), b (200 of 200 records)") in format_markdown([row])
    a, b = _pair(tmp_path)
    assert compare_verdict_files([a, b])[0].unverified == ()


def test_eval_score_output_carries_a_digest_that_covers_its_conditions(tmp_path) -> None:
    """The digest checked above is the one every cleanroom verdict writer emits: `eval score` of sampled responses,
    its conditions edited to read greedy, is refused (before: compared as greedy against greedy)."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"key": k, "prompt": f"Write about {k}.", "instruction_id_list":
                                           ["punctuation:no_comma"], "kwargs": [{}]}) + "\n" for k in range(3)))
    for out, temperature in (("v1.jsonl", 0.0), ("v2.jsonl", 0.7)):
        responses = tmp_path / f"r{temperature}.jsonl"
        responses.write_text("".join(json.dumps({"key": k, "response": "no commas", "rendering": "few-shot",
                                                 "generation": {"temperature": temperature}}) + "\n"
                                     for k in range(3)))
        assert main(["eval", "score", "--prompts", str(prompts), "--responses", str(responses),
                     "--out", str(tmp_path / out)]) == 0
    lines = (tmp_path / "v2.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    for rec in recs:
        rec["conditions"]["generation"] = {"temperature": 0.0}
    (tmp_path / "v2.jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in recs))
    with pytest.raises(InputError, match=r"v2\.jsonl line 1: provenance\.content_sha256"):
        compare_verdict_files([tmp_path / "v1.jsonl", tmp_path / "v2.jsonl"], min_n=3, override_reason="unit")


def test_a_record_without_a_digest_among_digested_ones_is_refused(tmp_path) -> None:
    """A writer digests every record or none: one record stripped of its digest (and its verdict flipped) in a
    digested file was compared, with only an "unverified (1 of 200 records)" note."""
    a, b = _pair(tmp_path)
    lines = b.read_text().splitlines(keepends=True)
    rec = json.loads(lines[4])
    del rec["provenance"]["content_sha256"]
    rec["strict"] = {"follow_all_instructions": True, "follow_instruction_list": [True]}
    lines[4] = json.dumps(rec) + "\n"
    b.write_text("".join(lines))
    with pytest.raises(InputError, match=r"b\.jsonl line 5: no provenance\.content_sha256, while 199 other"):
        compare_verdict_files([a, b])

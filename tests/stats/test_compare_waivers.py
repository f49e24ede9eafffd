"""eval compare's two waivers (minimum n, accepted differences): each needs its own reason and is reported with it."""

from __future__ import annotations

import json

import pytest

from cleanroom.cli import main
from cleanroom.errors import IncomparableError, StatisticsError
from cleanroom.stats import compare_verdict_files, format_markdown

from .test_compare import CONDITIONS, _write

MIN_N_LINE = "Below the minimum n (50 paired keys < 200); verdict given by override: "


def _scored(tmp_path, n=50):
    """Two `eval score` outputs on n prompts whose responses files record no generation or rendering settings
    (the auditor's wa50/wb50): conditions hold the prompt and scorer digests, and null for the rest."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"key": k, "prompt": f"Write about {k}.", "instruction_id_list":
                                           ["punctuation:no_comma"], "kwargs": [{}]}) + "\n" for k in range(n)))
    out = []
    for name, comma in (("wa", lambda k: k % 3 == 0), ("wb", lambda k: k % 5 == 0)):
        responses = tmp_path / f"r{name}.jsonl"
        responses.write_text("".join(json.dumps({"key": k, "response": "a, b" if comma(k) else "a b"}) + "\n"
                                     for k in range(n)))
        assert main(["eval", "score", "--prompts", str(prompts), "--responses", str(responses),
                     "--out", str(tmp_path / f"{name}{n}.jsonl")]) == 0
        out.append(str(tmp_path / f"{name}{n}.jsonl"))
    return out


def test_unrecorded_on_both_sides_is_not_compared_and_small_n_still_needs_its_own_reason(tmp_path, capsys) -> None:
    """Before: the pair was refused (exit 1, "generation: wa50=not recorded vs wb50=not recorded"); allowing the
    differences with --override-reason then also waived the minimum n, and neither output said so."""
    a, b = _scored(tmp_path)
    capsys.readouterr()
    assert main(["eval", "compare", a, b]) == 2  # the minimum n, not the unrecorded settings, stops it
    err = capsys.readouterr().err
    assert "n=50 paired keys is below the minimum of 200" in err and "not recorded" not in err
    assert main(["eval", "compare", a, b, "--override-reason", "smoke run"]) == 0
    out = capsys.readouterr().out
    assert MIN_N_LINE + "smoke run" in out
    assert ("Not compared, because no file recorded them (the files may differ in them): "
            "generation: not recorded in any file at 50 key(s); rendering: not recorded in any file at 50 key(s)"
            ) in out
    assert "Held equal across the files: prompt_sha256, scorer_sha256." in out  # never the unrecorded ones
    assert main(["eval", "compare", a, b, "--override-reason", "smoke run", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["override_reason"] == "smoke run" and row["difference_reason"] is None
    assert row["held_equal"] == ["prompt_sha256", "scorer_sha256"]
    assert row["not_compared"] == ["generation: not recorded in any file at 50 key(s)",
                                   "rendering: not recorded in any file at 50 key(s)"]
    assert row["notes"][0] == MIN_N_LINE + "smoke run"
    assert [n for n in row["notes"] if n.startswith("Not compared")] == [out.splitlines()[-1]]
    # the auditor's invocation: nothing differs, so there is nothing to allow, and the error says why
    assert main(["eval", "compare", a, b, "--allow-difference", "generation", "--allow-difference", "rendering",
                 "--override-reason", "smoke run"]) == 2
    assert "--allow-difference generation: no file recorded it, so it is not compared" in capsys.readouterr().err


def test_the_reason_for_a_difference_does_not_waive_the_minimum_n(tmp_path, capsys) -> None:
    keys = list(range(50))
    a = _write(tmp_path / "a.jsonl", keys, [[k % 2 == 0] for k in keys])
    b = _write(tmp_path / "b.jsonl", keys, [[k % 3 == 0] for k in keys],
               conditions=CONDITIONS | {"generation": CONDITIONS["generation"] | {"temperature": 0.7}})
    allow = ["eval", "compare", str(a), str(b), "--allow-difference", "generation.temperature"]
    assert main([*allow, "--override-reason", "ablation"]) == 2  # the old spelling: one reason for both gates
    assert "--allow-difference needs --difference-reason TEXT" in capsys.readouterr().err
    assert main([*allow, "--difference-reason", "ablation"]) == 2  # n=50 is not waived by it
    assert "n=50 paired keys is below the minimum of 200" in capsys.readouterr().err
    assert main(["eval", "compare", str(a), str(b), "--difference-reason", "ablation", "--override-reason", "x"]) == 2
    assert "--difference-reason was given without --allow-difference" in capsys.readouterr().err
    both = [*allow, "--difference-reason", "sampling ablation", "--override-reason", "pilot on 50 prompts"]
    assert main([*both, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["override_reason"] == "pilot on 50 prompts" and row["difference_reason"] == "sampling ablation"
    assert row["notes"] == [MIN_N_LINE + "pilot on 50 prompts",
                            "Differences accepted by override (sampling ablation): generation.temperature: 50 key(s), "
                            "e.g. key 0: a=0.0 vs b=0.7"]
    assert main(both) == 0
    out = capsys.readouterr().out
    assert all(line in out for line in row["notes"])


def test_min_n_line_is_printed_whatever_else_is_waived(tmp_path) -> None:
    """The below-minimum line was dropped from the Markdown whenever a difference was accepted."""
    keys = list(range(50))
    a = _write(tmp_path / "a.jsonl", keys, [[True]] * 50)
    b = _write(tmp_path / "b.jsonl", keys, [[False]] * 50, conditions=CONDITIONS | {"scorer_sha256": "u" * 64})
    rows = compare_verdict_files([a, b], override_reason="pilot", allow_differences=["scorer_sha256"],
                                 difference_reason="scorer fix only touches json_format")
    table = format_markdown(rows)
    assert MIN_N_LINE + "pilot" in table and "Differences accepted by override (scorer fix" in table
    assert rows[0].to_json()["notes"][0] == MIN_N_LINE + "pilot"
    big = list(range(200))  # at n >= 200 nothing is waived, so nothing is claimed
    a = _write(tmp_path / "a2.jsonl", big, [[True]] * 200)
    b = _write(tmp_path / "b2.jsonl", big, [[False]] * 200)
    row = compare_verdict_files([a, b], override_reason="unused")[0]
    assert row.override_reason is None and row.notes() == []


@pytest.mark.parametrize("field", ["prompt_sha256", "scorer_sha256"])
def test_a_scoring_condition_missing_everywhere_is_still_refused(tmp_path, field) -> None:
    """prompt and scorer digests are written by every cleanroom scorer: null on both sides is not 'not compared'."""
    keys = list(range(20))
    conditions = CONDITIONS | {field: None}
    a = _write(tmp_path / "a.jsonl", keys, [[True]] * 20, conditions=conditions)
    b = _write(tmp_path / "b.jsonl", keys, [[False]] * 20, conditions=conditions)
    with pytest.raises(IncomparableError, match=f"{field}: 20 key"):
        compare_verdict_files([a, b], min_n=20, override_reason="unit fixture")


def test_recorded_on_one_side_only_is_still_a_difference(tmp_path) -> None:
    keys = list(range(20))
    a = _write(tmp_path / "a.jsonl", keys, [[True]] * 20, conditions=CONDITIONS | {"generation": None})
    b = _write(tmp_path / "b.jsonl", keys, [[False]] * 20)
    with pytest.raises(IncomparableError, match=r"generation\.max_new_tokens: 20 key\(s\), e\.g\. key 0: "
                                                r"a=not recorded vs b=256"):
        compare_verdict_files([a, b], min_n=20, override_reason="unit fixture")
    with pytest.raises(StatisticsError, match="needs --difference-reason"):
        compare_verdict_files([a, b], min_n=20, override_reason="unit fixture", allow_differences=["generation"])


def test_an_allowed_unrecorded_field_is_quoted_by_its_own_line_whatever_order_not_compared_has(tmp_path,
                                                                                                monkeypatch) -> None:
    """--allow-difference on a field no file recorded quotes that field's not-compared line, looked up by name
    (``Comparability.not_compared_by_field``). It zipped the sorted field names with ``not_compared`` by
    position, right only while both were sorted by name: listed in another order (here reversed),
    --allow-difference rendering quoted generation's line."""
    from cleanroom.stats.comparability import NOT_RECORDED, Comparability, find_differences

    a, b = _scored(tmp_path)
    reversed_lines = property(lambda self: [f"{name}: {NOT_RECORDED} in any file at {n} key(s)"
                                            for name, n in sorted(self.unrecorded.items(), reverse=True)])
    with monkeypatch.context() as m:
        m.setattr(Comparability, "not_compared", reversed_lines)
        with pytest.raises(StatisticsError, match=r"--allow-difference rendering: no file recorded it, so it is not "
                                                  r"compared and the output says so \(rendering: not recorded in any "
                                                  r"file at 50 key\(s\)\)"):
            compare_verdict_files([a, b], allow_differences=["rendering"], override_reason="unit fixture")
    cond = {"prompt_sha256": "p", "scorer_sha256": "s", "generation": None, "rendering": None}
    per_file = {0: cond, 1: cond | {"rendering": {"x": 1}}}  # rendering recorded (rendering.x) at key 1
    found = find_differences([per_file, per_file], ["a", "b"])
    assert found.not_compared_by_field == {"generation": "generation: not recorded in any file at 2 key(s)",
                                           "rendering": "rendering: not recorded in any file at 1 key(s)"}
    assert found.not_compared == list(found.not_compared_by_field.values())

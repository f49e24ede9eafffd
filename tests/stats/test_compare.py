"""eval compare: reading verdict files, pairing on key, Holm family, JSON/Markdown output, refusals."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from cleanroom.cli import eval_compare
from cleanroom.errors import InputError, MissingFileError, StatisticsError
from cleanroom.hashing import content_sha256
from cleanroom.stats import compare_verdict_files, format_markdown
from cleanroom.stats.compare import JSON_EXTRA_FIELDS, JSON_FIELDS

# What every file below was produced under (only the model differs): eval compare requires it equal.
CONDITIONS = {"prompt_sha256": "p" * 64, "scorer_sha256": "s" * 64, "rendering": {"few_shot_digest": "f" * 64},
              "generation": {"max_new_tokens": 256, "temperature": 0.0, "stop": ["\n### Request:"], "seed": 0}}


def _write(path, keys, lists, *, loose=None, conditions=None, digest=True):
    """A verdict file; each record's provenance carries its content_sha256 (as cleanroom writes it) unless
    ``digest=False``; ``conditions=False`` writes none."""
    conditions = CONDITIONS | {"model": {"path": path.stem}} if conditions is None else conditions
    with path.open("w", encoding="utf-8") as fh:
        for k, lst in zip(keys, lists, strict=True):
            lst = [bool(v) for v in lst]
            lo = lst if loose is None else [True] * len(lst)
            rec = {
                "key": k, "instruction_id_list": [f"x:{i}" for i in range(len(lst))], "response": "r",
                "strict": {"follow_all_instructions": all(lst), "follow_instruction_list": lst},
                "loose": {"follow_all_instructions": all(lo), "follow_instruction_list": lo},
                **({"conditions": conditions} if conditions is not False else {}),
            }
            block = {"record_id": f"eval:{k}"} | ({"content_sha256": content_sha256(rec)} if digest else {})
            fh.write(json.dumps(rec | {"provenance": block}) + "\n")
    return path


def _three_systems(tmp_path, n=300, seed=0):
    """Base passes each instruction w.p. 0.3; SFT flips fails to passes w.p. 0.4; DPO equals SFT."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, size=n)
    base = [rng.random(m) < 0.3 for m in sizes]
    sft = [b | (rng.random(b.size) < 0.4) for b in base]
    keys = list(range(1000, 1000 + n))
    return (
        _write(tmp_path / "base.jsonl", keys, base),
        _write(tmp_path / "sft.jsonl", keys, sft),
        _write(tmp_path / "dpo.jsonl", keys[::-1], sft[::-1]),  # order must not matter: paired on key
    )


def test_three_files_family_and_verdicts(tmp_path):
    a, b, c = _three_systems(tmp_path)
    rows = compare_verdict_files([a, b, c])
    assert [(r.a, r.b) for r in rows] == [("base", "sft"), ("sft", "dpo"), ("base", "dpo")]
    assert rows[0].verdict == "improved" and rows[2].verdict == "improved"
    assert rows[1].difference == 0 and rows[1].verdict.startswith("no detectable difference (MDE = ")
    assert rows[1].p_value == 1.0 and rows[1].ci_low < 0 < rows[1].ci_high
    # Holm: the sorted p's are multiplied by 3, 2, 1 (with the running max)
    ps = sorted(r.p_value for r in rows)
    assert min(r.p_holm for r in rows) == pytest.approx(min(1, 3 * ps[0]))
    assert all(r.p_holm >= r.p_value for r in rows)
    assert all(list(r.to_json()) == [*JSON_FIELDS, *JSON_EXTRA_FIELDS] for r in rows)
    assert all(r.to_json()["override_reason"] is None for r in rows)
    assert rows[0].n == 300 and rows[0].mde > 0


def test_regression_is_named(tmp_path):
    a, b, _ = _three_systems(tmp_path)
    rows = compare_verdict_files([b, a])
    assert rows[0].verdict == "regressed" and rows[0].difference < 0 and rows[0].ci_high < 0


def test_instruction_level_uses_clustered_interval(tmp_path):
    a, b, _ = _three_systems(tmp_path)
    row = compare_verdict_files([a, b], level="instruction")[0]
    assert row.n > row.n_keys == 300 and "cluster-robust" in row.method
    assert row.ci_low < row.difference < row.ci_high and row.verdict == "improved"
    assert "| p (clustered t) |" in format_markdown([row])
    same = compare_verdict_files([b, tmp_path / "dpo.jsonl"], level="instruction")[0]
    assert same.ci_high - same.ci_low > 0 and "no within-key variation" in same.method


def test_markdown_header_names_the_test_each_p_value_came_from(tmp_path):
    """SFT and DPO are identical, so their instruction-level difference has no within-key variation and
    its p is mid-p McNemar on the instruction pairs: the header must not claim a clustered t for it, and
    a family mixing both methods says so in the header and names the odd row in the notes."""
    a, b, c = _three_systems(tmp_path)
    fallback = compare_verdict_files([b, c], level="instruction")
    assert "mid-p McNemar" in fallback[0].method
    table = format_markdown(fallback)
    assert "| p (mid-p McNemar) |" in table and "clustered t" not in table
    mixed = format_markdown(compare_verdict_files([a, b, c], level="instruction"))
    assert "| p (method per row, see notes) |" in mixed
    assert "sft vs dpo: no within-key variation: mid-p McNemar" in mixed


def test_loose_mode_reads_the_loose_block(tmp_path):
    keys = list(range(250))
    x = _write(tmp_path / "x.jsonl", keys, [[False]] * 250, loose=True)
    y = _write(tmp_path / "y.jsonl", keys, [[False]] * 250)
    assert compare_verdict_files([y, x], mode="loose")[0].verdict == "improved"
    assert compare_verdict_files([y, x], mode="strict")[0].difference == 0


def test_mismatched_keys_name_the_missing_ones(tmp_path):
    a = _write(tmp_path / "a.jsonl", list(range(250)), [[True]] * 250)
    b = _write(tmp_path / "b.jsonl", list(range(1, 251)), [[True]] * 250)
    with pytest.raises(InputError, match=r"lacks 1 key\(s\).*: 0") as exc:
        compare_verdict_files([a, b])
    assert "250" in str(exc.value) and exc.value.exit_code == 2


def test_malformed_files_name_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    good = json.dumps({"key": 1, "strict": {"follow_all_instructions": True, "follow_instruction_list": [True]}})
    p.write_text(good + "\n{not json\n")
    with pytest.raises(InputError, match="bad.jsonl line 2"):
        compare_verdict_files([p, p])
    p.write_text(good + "\n" + good + "\n")
    with pytest.raises(InputError, match="line 2: key 1 repeats line 1"):
        compare_verdict_files([p, p])
    p.write_text(json.dumps({"key": 1, "strict": {"follow_all_instructions": True,
                                                  "follow_instruction_list": [True, False]}}) + "\n")
    with pytest.raises(InputError, match="disagrees"):
        compare_verdict_files([p, p])
    with pytest.raises(MissingFileError):
        compare_verdict_files([tmp_path / "nope.jsonl", p])


def test_small_n_refused_unless_overridden(tmp_path):
    a = _write(tmp_path / "a.jsonl", list(range(12)), [[True]] * 12)
    b = _write(tmp_path / "b.jsonl", list(range(12)), [[False]] * 12)
    with pytest.raises(StatisticsError, match="n=12 paired keys is below the minimum of 200"):
        compare_verdict_files([a, b])
    rows = compare_verdict_files([a, b], override_reason="tiny CPU profile")
    assert rows[0].override_reason == "tiny CPU profile" and rows[0].verdict == "regressed"
    assert rows[0].to_json()["override_reason"] == "tiny CPU profile"
    assert "override: tiny CPU profile" in format_markdown(rows)
    with pytest.raises(StatisticsError, match="2 or 3"):
        compare_verdict_files([a])


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_lowering_min_n_is_itself_an_override(tmp_path, reason):
    """min_n=5 at n=10 used to pass the n >= min_n check and give a verdict with no reason on record."""
    a = _write(tmp_path / "a.jsonl", list(range(10)), [[True]] * 10)
    b = _write(tmp_path / "b.jsonl", list(range(10)), [[False]] * 10)
    with pytest.raises(StatisticsError, match=r"min_n=5 .*below the floor of 200.*--override-reason"):
        compare_verdict_files([a, b], min_n=5, override_reason=reason)
    rows = compare_verdict_files([a, b], min_n=5, override_reason="  unit fixture  ")
    assert rows[0].override_reason == "unit fixture" and rows[0].n == 10


def test_min_n_rule_by_case():
    """The rule, case by case: the floor is max(min_n, 200); a min_n below 200 needs a reason at any n;
    the reason is returned (to be recorded) only when the verdict rests on it."""
    from cleanroom.stats import require_min_n

    assert require_min_n(200) is None and require_min_n(5000, min_n=300) is None
    assert require_min_n(250, min_n=300, override_reason="r") == "r"  # raised bar, overridden
    assert require_min_n(250, min_n=5, override_reason="r") is None  # n >= 200: reason not needed
    assert require_min_n(150, min_n=100, override_reason="r") == "r"  # n < 200 rests on the reason
    with pytest.raises(StatisticsError, match="below the floor"):
        require_min_n(5000, min_n=199)
    with pytest.raises(StatisticsError, match="n=250 paired keys is below the minimum of 300"):
        require_min_n(250, min_n=300)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(StatisticsError, match="whole number >= 1"):
            require_min_n(500, min_n=bad, override_reason="r")


def _cli(argv):
    parser = argparse.ArgumentParser()
    eval_compare.add_arguments(parser)
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_json_and_markdown(tmp_path, capsys):
    a, b, c = _three_systems(tmp_path)
    assert _cli([str(a), str(b), str(c), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and all(list(r) == [*JSON_FIELDS, *JSON_EXTRA_FIELDS] for r in rows)
    assert all(r["override_reason"] is None for r in rows)
    assert rows[0]["a"] == "base" and rows[0]["verdict"] == "improved"
    assert _cli([str(a), str(b), "--level", "instruction", "--mode", "loose"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| A | B | n |") and "| base | sft |" in out and "clustered t" in out


def test_cli_mismatch_exits_2_through_main(tmp_path, capsys):
    """`cleanroom eval compare` (mounted by cli/eval_cmd.py): key mismatch → one-line error, exit 2."""
    from cleanroom.cli import main

    a = _write(tmp_path / "a.jsonl", list(range(250)), [[True]] * 250)
    b = _write(tmp_path / "b.jsonl", list(range(249)), [[True]] * 249)
    assert main(["eval", "compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "InputError" in err and "lacks 1 key(s)" in err and "249" in err


def test_cli_min_n_below_200_needs_a_reason_and_json_records_it(tmp_path, capsys):
    """`eval compare a10 b10 --min-n 5 --json` exited 0 with a verdict at n=10 and no reason anywhere."""
    from cleanroom.cli import main

    a = _write(tmp_path / "a10.jsonl", list(range(10)), [[True]] * 10)
    b = _write(tmp_path / "b10.jsonl", list(range(10)), [[False]] * 10)
    assert main(["eval", "compare", str(a), str(b), "--min-n", "5", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err and "StatisticsError" in err and "--override-reason" in err and "--min-n 5" in err
    argv = ["eval", "compare", str(a), str(b), "--min-n", "5", "--json", "--override-reason", "10-key fixture"]
    assert main(argv) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["override_reason"] == "10-key fixture" and row["n"] == 10 and row["verdict"] == "regressed"
    assert main(["eval", "compare", str(a), str(b), "--override-reason", "10-key fixture"]) == 0
    assert "verdict given by override: 10-key fixture" in capsys.readouterr().out

"""The eval command: score (exit codes, verdict file with provenance), make-set, and run on the tiny base model."""

from __future__ import annotations

import json

import pytest

from cleanroom.cli import main
from cleanroom.ifeval import make_eval_set, read_prompts, teacher_response


@pytest.fixture()
def files(tmp_path):
    import numpy as np

    make_eval_set(tmp_path, n_eval=20, n_pool=5)
    prompts = read_prompts(tmp_path / "eval_prompts.jsonl")
    rng = np.random.default_rng(0)
    with open(tmp_path / "responses.jsonl", "w") as fh:
        for r in prompts[:19]:
            fh.write(json.dumps({"key": r.key, "response": teacher_response(r, rng), "prompt": "ignored"}) + "\n")
        fh.write(json.dumps({"key": prompts[19].key, "response": ""}) + "\n")
    return tmp_path


def test_score_writes_verdicts_and_summary(files, capsys):
    out, summary = files / "v.jsonl", files / "s.json"
    rc = main(["eval", "score", "--prompts", str(files / "eval_prompts.jsonl"), "--responses",
               str(files / "responses.jsonl"), "--out", str(out), "--summary", str(summary)])
    assert rc == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 20 and lines[0]["provenance"]["record_id"] == f"eval/eval:{lines[0]['key']}"
    assert [v["strict"]["follow_all_instructions"] for v in lines] == [True] * 19 + [False]
    s = json.loads(summary.read_text())
    assert s["prompt_strict"]["successes"] == 19
    assert "prompt      strict  95.00%" in capsys.readouterr().out
    # re-scoring gives identical verdicts (the provenance block carries a capture time, the content digest does not)
    main(["eval", "score", "--prompts", str(files / "eval_prompts.jsonl"), "--responses",
          str(files / "responses.jsonl"), "--out", str(files / "v2.jsonl")])
    again = [json.loads(x) for x in (files / "v2.jsonl").read_text().splitlines()]
    assert [v["provenance"]["content_sha256"] for v in again] == [v["provenance"]["content_sha256"] for v in lines]
    assert [{k: v[k] for k in v if k != "provenance"} for v in again] == [
        {k: v[k] for k in v if k != "provenance"} for v in lines]


def test_score_missing_key_is_exit_2(files, capsys):
    lines = (files / "responses.jsonl").read_text().splitlines()
    (files / "responses.jsonl").write_text("\n".join(lines[1:]) + "\n")
    rc = main(["eval", "score", "--prompts", str(files / "eval_prompts.jsonl"), "--responses",
               str(files / "responses.jsonl"), "--out", str(files / "v.jsonl")])
    assert rc == 2
    assert "have no response" in capsys.readouterr().err


def _score(files, *extra: str) -> int:
    return main(["eval", "score", "--prompts", str(files / "eval_prompts.jsonl"), "--responses",
                 str(files / "responses.jsonl"), *extra])


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and "unexpected" not in err[0], err
    return err[0]


def test_score_refuses_a_fifo_or_device_output_and_writes_nothing(files, capsys):
    """Before the fix both were replaced by a regular file, rc 0 (as root, --out /dev/null replaced /dev/null)."""
    import os
    import stat

    os.mkfifo(files / "fo")
    (files / "dn").symlink_to(os.devnull)
    assert _score(files, "--out", str(files / "v.jsonl"), "--summary", str(files / "fo")) == 2
    assert "--summary" in (line := _err_line(capsys)) and "is a FIFO (named pipe), not a regular file" in line
    assert stat.S_ISFIFO((files / "fo").lstat().st_mode) and not (files / "v.jsonl").exists()
    assert _score(files, "--out", str(files / "dn")) == 2
    assert "--out" in (line := _err_line(capsys)) and "is a character device" in line
    assert (files / "dn").is_symlink()


def test_score_writes_neither_output_when_the_summary_cannot_be_written(files, capsys):
    """Before the fix --out (303 KB on the full set) was written, then --summary failed with rc 2."""
    (files / "f").write_text("x\n")
    assert _score(files, "--out", str(files / "v2.jsonl"), "--summary", str(files / "f" / "s.json")) == 2
    assert "f is a file, so nothing can be written under it" in _err_line(capsys)
    assert not (files / "v2.jsonl").exists()


def test_score_names_a_symlink_loop_instead_of_crashing(files, capsys):
    (files / "l1").symlink_to(files / "l2")
    (files / "l2").symlink_to(files / "l1")
    assert main(["eval", "score", "--prompts", str(files / "eval_prompts.jsonl"), "--responses", str(files / "l1"),
                 "--out", str(files / "v.jsonl")]) == 2
    assert "InputError: --responses" in (line := _err_line(capsys)) and "l1: is a symlink loop" in line


def test_score_replaces_its_own_outputs_but_not_a_users_file(files, capsys):
    out, summary = files / "v.jsonl", files / "s.json"
    assert _score(files, "--out", str(out), "--summary", str(summary)) == 0
    assert _score(files, "--out", str(out), "--summary", str(summary)) == 0  # its own outputs: replaced
    capsys.readouterr()
    notes = files / "mynotes.txt"
    notes.write_text("notes\n")
    for option in ("--summary", "--out"):
        args = {"--out": str(out), "--summary": str(summary)} | {option: str(notes)}
        assert _score(files, *[x for kv in args.items() for x in kv]) == 2
        line = _err_line(capsys)
        assert f"{option} {notes}: exists and is not a" in line and "remove that file or pass another path" in line
        assert notes.read_text() == "notes\n"
    assert _score(files, "--out", str(files / "sft_pool.jsonl"), "--summary", str(summary)) == 2
    assert "is not a verdict file of `cleanroom eval score`" in _err_line(capsys)  # another command's output


def test_score_refuses_to_replace_an_empty_file_it_did_not_write(files, capsys):
    """An empty file at --out or --summary is not an earlier output (scoring writes at least one record and a
    JSON object): refused like any other file, left where it was, nothing written (it was replaced before)."""
    out, summary = files / "v.jsonl", files / "s.json"
    for option in ("--out", "--summary"):
        empty = files / f"empty{option}"
        empty.touch()
        args = {"--out": str(out), "--summary": str(summary)} | {option: str(empty)}
        assert _score(files, *[x for kv in args.items() for x in kv]) == 2
        assert f"{option} {empty}: exists and is not a" in _err_line(capsys)
        assert empty.read_bytes() == b"" and not out.exists() and not summary.exists()


def test_make_set_refuses_a_negative_seed_at_the_argument(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "make-set", "--out", str(tmp_path / "x"), "--seed", "-1"])
    assert exc.value.code == 2 and "argument --seed: -1 is not >= 0; pass an integer >= 0" in _err_line(capsys)
    assert not (tmp_path / "x").exists()


def test_make_set_refuses_to_replace_a_file_that_is_not_part_of_a_set(tmp_path, capsys):
    argv = ["eval", "make-set", "--out", str(tmp_path), "--n-eval", "5", "--n-pool", "5"]
    assert main(argv) == 0 and main(argv) == 0  # a set's own files are replaced
    capsys.readouterr()
    (tmp_path / "sft_pool.jsonl").write_text("mine\n")
    before = (tmp_path / "eval_prompts.jsonl").read_bytes()
    assert main([*argv[:-1], "6"]) == 2
    assert "sft_pool.jsonl: exists and is not a file of an eval set" in _err_line(capsys)
    assert (tmp_path / "sft_pool.jsonl").read_text() == "mine\n"
    assert (tmp_path / "eval_prompts.jsonl").read_bytes() == before


def test_make_set_command(tmp_path, capsys):
    assert main(["eval", "make-set", "--out", str(tmp_path), "--n-eval", "300", "--n-pool", "50"]) == 0
    info = json.loads((tmp_path / "eval_set.json").read_text())
    assert info["n_eval"] == 300 and len(info["types_covered"]) >= 15
    assert "no shared prompt or 13-gram" in capsys.readouterr().out


@pytest.mark.slow
def test_run_on_tiny_base_model_is_verified(tiny_base_model, tmp_path):
    from cleanroom.verify import verify_run

    rc = main(["eval", "run", "--model", str(tiny_base_model), "--limit", "3", "--max-new-tokens", "4",
               "--no-probe", "--out", str(tmp_path), "--run-id", "t"])
    assert rc == 0
    verdicts = (tmp_path / "t" / "eval" / "verdicts.jsonl").read_text().splitlines()
    assert len(verdicts) == 3
    report = verify_run(tmp_path / "t")
    assert report.ok, report.errors


@pytest.mark.parametrize(("args", "named"), [
    (["--seed", "-1"], "argument --seed: -1 is not >= 0; pass an integer >= 0"),
    (["--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (["--n-eval", "0"], "argument --n-eval: 0 is not >= 1"),
    (["--n-pool", "-5"], "argument --n-pool: -5 is not >= 1"),
])
def test_make_set_refuses_a_bad_number_at_the_argument(tmp_path, capsys, args, named):
    """`eval make-set --seed -1` reached numpy and came back as "unexpected ValueError" from the catch-all."""
    with pytest.raises(SystemExit) as exc:
        main(["eval", "make-set", "--out", str(tmp_path / "x"), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and named in err and "unexpected" not in err
    assert not (tmp_path / "x").exists()

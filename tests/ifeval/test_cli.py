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

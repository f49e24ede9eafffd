"""eval run (cleanroom.pipeline.eval_run): the respond stage code in a run of its own; a killed run resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cleanroom.cli import main

pytestmark = pytest.mark.slow

ARGS = ["--limit", "5", "--max-new-tokens", "4", "--batch-size", "2", "--no-probe", "--run-id", "t"]


def payloads(path: Path) -> list[tuple[str, dict[str, Any]]]:
    from cleanroom.artifacts import read_records

    return [(r["provenance"]["record_id"], {k: v for k, v in r.items() if k != "provenance"}) for r in read_records(path)]


def test_a_killed_eval_run_resumes_to_exactly_the_uninterrupted_records(tiny_base_model: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from cleanroom.artifacts import RecordWriter
    from cleanroom.verify import verify_run

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["eval", "run", "--model", str(tiny_base_model), *ARGS, "--out", str(whole)]) == 0
    want_responses = payloads(whole / "t" / "eval" / "responses.jsonl")
    want_verdicts = payloads(whole / "t" / "eval" / "verdicts.jsonl")
    assert [rid for rid, _ in want_responses] == [f"eval/model/response:{rec['key']}" for _, rec in want_responses]
    assert len(want_responses) == len(want_verdicts) == 5

    real_write = RecordWriter.write
    written: list[str] = []

    def killed_after_three(self: RecordWriter, payload: Any, **kwargs: Any) -> str:
        if len(written) == 3:  # the middle of the second batch of two
            raise KeyboardInterrupt
        written.append(kwargs.get("record_id") or "")
        return real_write(self, payload, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(RecordWriter, "write", killed_after_three)
        assert main(["eval", "run", "--model", str(tiny_base_model), *ARGS, "--out", str(killed)]) == 130
    stage = killed / "t" / "eval"
    assert not (stage / "manifest.json").exists() and len(payloads(stage / "responses.jsonl")) == 3
    assert verify_run(killed / "t").unfinished == "eval"  # its own stage, not Stage 1's first (preflight)
    first_lines = (stage / "responses.jsonl").read_text()

    from cleanroom import generation
    from cleanroom.pipeline import respond

    real_generate = generation.generate
    prompts_generated: list[str] = []

    def counting(model: Any, tokenizer: Any, prompts: list[str], **kwargs: Any) -> Any:
        prompts_generated.extend(prompts)
        return real_generate(model, tokenizer, prompts, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(generation, "generate", counting)
        if hasattr(respond, "generate"):  # imported by name at module level
            m.setattr(respond, "generate", counting)
        assert main(["eval", "run", "--model", str(tiny_base_model), *ARGS, "--out", str(killed)]) == 0
    # the first batch was complete and is not generated again; the cut one is generated whole (same padding), then
    # the last: 2 + 1 prompts
    assert len(prompts_generated) == 3
    assert (stage / "responses.jsonl").read_text().startswith(first_lines)  # appended to, never rewritten
    assert payloads(stage / "responses.jsonl") == want_responses
    assert payloads(stage / "verdicts.jsonl") == want_verdicts
    assert json.loads((stage / "summary.json").read_text()) == json.loads((whole / "t" / "eval" / "summary.json").read_text())
    assert len(json.loads((stage / "stage.json").read_text())["attempts"]) == 2
    report = verify_run(killed / "t")
    assert report.ok, report.errors
    (whole / "t" / "attestation.json").unlink()  # finished (its eval stage has a manifest): a broken edge
    report = verify_run(whole / "t")
    assert (report.unfinished, report.first.file if report.first else None) == (None, "attestation.json")


def test_eval_run_refuses_other_settings_under_the_same_run_id(tiny_base_model: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "run", "--model", str(tiny_base_model), *ARGS, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["eval", "run", "--model", str(tiny_base_model), *ARGS, "--seed", "1", "--out", str(tmp_path)]) == 2
    assert "choose a new run_id or the same config to resume" in capsys.readouterr().err


def test_an_instruct_model_is_refused_with_this_commands_option_and_accepted_with_it(tiny_base_model: Path,
                                                                                     tmp_path: Path, capsys) -> None:
    """The loader's refusal named its keyword (`allow_instruct=True`), which `eval run` does not have: the
    command names its own option, and the option accepts the model with the reason recorded."""
    import shutil

    model = tmp_path / "instruct"
    shutil.copytree(tiny_base_model, model)
    gen = json.loads((model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps(gen | {"eos_token_id": [151645, 151643]}))
    args = ["eval", "run", "--model", str(model), "--limit", "1", "--max-new-tokens", "2", "--no-probe",
            "--run-id", "t", "--out", str(tmp_path / "runs")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after transformers' progress bar
    assert err.startswith("cleanroom eval: InstructModelError: ") and "end-of-turn" in err, err
    assert "pass --allow-instruct REASON to evaluate it anyway" in err and "allow_instruct=True" not in err
    assert main([*args, "--allow-instruct", "a test of the option"]) == 0
    manifest = json.loads((tmp_path / "runs" / "t" / "eval" / "manifest.json").read_text())
    loader = manifest["provenance"]["loader"]
    assert loader["allow_instruct"] is True and loader["allow_instruct_reason"] == "a test of the option"

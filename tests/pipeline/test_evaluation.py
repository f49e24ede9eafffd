"""The eval stage's family of comparisons: each verdict file compared under the conditions its own records carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanroom.artifacts import RunDir
from cleanroom.config import EvalSpec, GenerationSpec
from cleanroom.errors import IncomparableError
from cleanroom.ifeval.io import PromptRecord
from cleanroom.pipeline.evaluation import compare_policies
from cleanroom.pipeline.respond import score_into
from cleanroom.provenance import capture_provenance

N = 20
SPEC = EvalSpec(min_n=N, override_reason="unit fixture: 20 prompts")


def _verdict_files(tmp_path: Path) -> list[Path]:
    """base, SFT and DPO verdict files written as the stage writes them (score_into), on N prompts."""
    prompts = [PromptRecord(k, f"Write about {k}.", ("punctuation:no_comma",), ({},)) for k in range(N)]
    run = RunDir.create(tmp_path, "r1", {"seed": 0})
    gen = vars(GenerationSpec())
    with run.stage("eval", provenance=capture_provenance("eval", run_id="r1")) as st:
        for name, comma in (("base", 2), ("sft", 3), ("dpo", 5)):
            responses = {k: {"response": "a, b" if k % comma else "a b", "provenance": {"record_id": f"r:{k}"}}
                         for k in range(N)}
            score_into(st.jsonl(f"{name}_verdicts.jsonl"), prompts, responses, responses_artifact=f"eval/{name}_responses.jsonl",
                       id_prefix=f"eval/{name}_verdict", model_refs=[],
                       produced_under={"model": {"name": name}, "generation": gen, "rendering": {"few_shot_digest": "f"}})
    files = []
    for name in ("base", "sft", "dpo"):  # copied out of the run, as run_eval does, so they can be edited
        dest = tmp_path / f"{name}.jsonl"
        dest.write_bytes((run.path / "eval" / f"{name}_verdicts.jsonl").read_bytes())
        files.append(dest)
    return files


def test_the_family_is_compared_under_the_conditions_every_verdict_records(tmp_path) -> None:
    files = _verdict_files(tmp_path)
    comparisons = compare_policies(files, SPEC, seed=0)
    assert sorted(comparisons) == ["instruction/loose", "instruction/strict", "prompt/loose", "prompt/strict"]
    row = comparisons["prompt/strict"][0]
    assert (row["a"], row["b"]) == ("base", "sft")
    assert {"prompt_sha256", "scorer_sha256", "rendering.few_shot_digest", "generation.temperature"} <= set(
        row["held_equal"]) and row["not_compared"] == ()


def test_a_verdict_without_conditions_is_refused_as_such(tmp_path) -> None:
    """A verdict whose conditions were removed is refused, naming the file that lacks them. The stage passed
    stand-in conditions (a prompt-file digest, the scorer, rendering, generation) for such records, which
    carried no prompt_sha256, so the refusal blamed a prompt_sha256 difference that was never observed."""
    files = _verdict_files(tmp_path)
    lines = [json.loads(line) for line in files[1].read_text().splitlines()]
    files[1].write_text("".join(json.dumps({k: v for k, v in rec.items() if k not in ("conditions", "provenance")})
                                + "\n" for rec in lines))
    with pytest.raises(IncomparableError, match=r"conditions: not recorded in sft \(score it with") as caught:
        compare_policies(files, SPEC, seed=0)
    assert "prompts_sha256" not in str(caught.value)

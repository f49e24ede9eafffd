"""The official IFEval prompt set (../shared/ifeval): every instruction constructs, GPT-4 accuracy matches the paper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanroom.fixtures import official_ifeval_dir
from cleanroom.ifeval import file_sha256, read_prompts, score_responses, summarize

SHARED = official_ifeval_dir(Path(__file__).resolve().parents[2])
PROMPTS = SHARED / "input_data.jsonl"
GPT4 = SHARED / "input_response_data_gpt4_20231107_145030.jsonl"
pytestmark = pytest.mark.skipif(not PROMPTS.is_file(), reason=f"official IFEval data not found at {SHARED}")

# Zhou et al. 2023, Table 3 (GPT-4): prompt strict, instruction strict, prompt loose, instruction loose.
PAPER = {"prompt_strict": 76.89, "instruction_strict": 83.57, "prompt_loose": 79.30, "instruction_loose": 85.37}


@pytest.fixture(scope="module")
def prompts():
    return read_prompts(PROMPTS, sha256="67ffeee0fcb87c317c5b08a2de85557b4a7e96ada6178aa645b4954fe4b53d49")


def test_every_official_instruction_constructs(prompts):
    assert len(prompts) == 541
    assert sum(len(p.instructions()) for p in prompts) == 834
    assert len({i for p in prompts for i in p.instruction_id_list}) == 25


def test_gpt4_accuracy_within_one_point_of_the_paper(prompts):
    """Responses are joined by key (mapped from the identical prompt text); |ours - paper| <= 1 point each."""
    assert file_sha256(GPT4) == "c325955b1f139ceb5d3fdf7828b163a5e13d9a3bdbdec15fe1f9fac9a651bd27"
    key_of = {p.prompt: p.key for p in prompts}
    responses = {}
    with open(GPT4, encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            responses[key_of[obj["prompt"]]] = obj["response"]
    summary = summarize(score_responses(prompts, responses))
    for name, paper in PAPER.items():
        ours = 100 * summary[name]["estimate"]
        assert abs(ours - paper) <= 1.0, (name, ours, paper)
    assert summary["per_type"]["detectable_format:title"]["n"] == 37

"""Instruction-following eval gates: the embedded eval set is disjoint from the SFT pool; official IFEval loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanroom.fixtures import official_ifeval_dir
from cleanroom.ifeval import check_overlap, generate_prompts, read_prompts

OFFICIAL = official_ifeval_dir(Path(__file__).resolve().parents[1]) / "input_data.jsonl"


def test_embedded_eval_set_and_sft_pool_share_no_prompt_and_no_13gram():
    eval_set = generate_prompts(300, seed=0, split="eval")
    pool = generate_prompts(600, seed=0, split="pool")
    check_overlap(eval_set, pool, n=13)
    assert len({i for r in eval_set for i in r.instruction_id_list}) >= 15


@pytest.mark.skipif(not OFFICIAL.is_file(), reason=f"official IFEval prompts not found at {OFFICIAL}")
def test_official_prompt_set_is_fully_supported():
    prompts = read_prompts(OFFICIAL)
    assert sum(len(p.instructions()) for p in prompts) == 834

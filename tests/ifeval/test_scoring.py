"""Scoring: strict/loose semantics, Hypothesis properties, key joins, determinism across PYTHONHASHSEED."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.errors import InputError
from cleanroom.ifeval import (
    PromptRecord,
    format_summary,
    loose_variants,
    score_record,
    score_responses,
    summarize,
)

REC = PromptRecord(
    key=1, prompt="p",
    instruction_id_list=("punctuation:no_comma", "startend:quotation", "detectable_format:title"),
    kwargs=({}, {}, {}),
)


def test_loose_passes_when_first_line_is_chatter():
    """Strict fails the quotation (first line is not quoted); loose drops the first line and passes."""
    v = score_record(REC, 'Sure, here you go:\n"<<T>> text"')
    assert v["strict"]["follow_instruction_list"] == [False, False, True]
    assert v["loose"]["follow_instruction_list"] == [True, True, True]
    assert v["loose"]["follow_all_instructions"] is True


def test_loose_variants_are_the_eight_standard_ones():
    assert loose_variants("a\n*b*\nc") == ["a\n*b*\nc", "*b*\nc", "a\n*b*", "*b*", "a\nb\nc", "b\nc", "a\nb", "b"]


@pytest.mark.parametrize("response", ["", "   \n "])
def test_empty_response_fails_every_instruction(response):
    rec = PromptRecord(2, "p", ("punctuation:no_comma", "keywords:forbidden_words"), ({}, {"forbidden_words": ["x"]}))
    v = score_record(rec, response)
    assert v["strict"]["follow_instruction_list"] == [False, False]
    assert v["loose"]["follow_instruction_list"] == [False, False]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list('ab ,."*<>\n#P.S')), max_size=60))
def test_loose_at_least_strict_and_prompt_is_all_of_instructions(text):
    v = score_record(REC, text)
    for s, lo in zip(v["strict"]["follow_instruction_list"], v["loose"]["follow_instruction_list"], strict=True):
        assert lo or not s
    for mode in ("strict", "loose"):
        assert v[mode]["follow_all_instructions"] == all(v[mode]["follow_instruction_list"])


def test_missing_and_extra_keys_are_named():
    with pytest.raises(InputError, match=r"no response: \[1\].*no prompt: \[7\]"):
        score_responses([REC], {7: "x"})


def test_summary_counts_and_intervals():
    """2 prompts: one all-pass, one fails 1 of 3 -> prompt strict 1/2, instruction strict 5/6."""
    vs = score_responses([REC, PromptRecord(3, "q", REC.instruction_id_list, REC.kwargs)],
                         {1: '"<<T>> ok"', 3: '"<<T>> a, b"'})
    s = summarize(vs)
    assert (s["prompt_strict"]["successes"], s["prompt_strict"]["n"]) == (1, 2)
    assert (s["instruction_strict"]["successes"], s["instruction_strict"]["n"]) == (5, 6)
    assert s["prompt_strict"]["low"] < 0.5 < s["prompt_strict"]["high"]
    assert s["per_type"]["punctuation:no_comma"] == {"n": 2, "strict": 0.5, "loose": 0.5}
    # instruction level: clustered by prompt, with the Wilson interval on the counts beside it
    inst = s["instruction_strict"]
    assert inst["method"].startswith("clustered-t") and inst["wilson_low"] < 5 / 6 < inst["wilson_high"]
    lines = format_summary(s).splitlines()
    assert lines[0].endswith("Wilson") and "clustered-t by prompt; Wilson on the counts [" in lines[2]
    with pytest.raises(InputError):
        summarize([])


_SCRIPT = """
import json
from cleanroom.ifeval import PromptRecord, score_responses
texts = ["Das ist ein Text auf Deutsch, oder vielleicht nicht.", "this is english text that is lowercase",
         "Questo è un testo italiano molto breve.", "ok"]
recs = [PromptRecord(i, "p", ("language:response_language", "change_case:english_lowercase",
        "length_constraints:number_sentences", "change_case:capital_word_frequency"),
        ({"language": "de"}, {}, {"num_sentences": 1, "relation": "at least"},
         {"capital_frequency": 1, "capital_relation": "less than"})) for i in range(4)]
print(json.dumps(score_responses(recs, dict(enumerate(texts))), sort_keys=True))
"""


def test_identical_verdicts_across_hash_seeds():
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True)
        outs.add(res.stdout)
    assert len(outs) == 1
    assert json.loads(outs.pop())[0]["strict"]["follow_instruction_list"][0] is True

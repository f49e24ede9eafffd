"""Each of the 25 IFEval instruction checkers: positive and negative cases, boundaries, kwarg validation."""

from __future__ import annotations

import pytest

from cleanroom.errors import InputError
from cleanroom.ifeval import INSTRUCTION_TYPES, build_instruction
from cleanroom.ifeval.text import count_sentences, word_tokens


def chk(iid, text, **kw):
    return build_instruction(iid, kw)(text)


CASES = [
    # (id, kwargs, passing text, failing text)
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "THIS is GOOD.", "Only ONE here."),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "Only ONE here.", "THIS is GOOD."),
    ("change_case:english_capital", {}, "THIS IS ALL WRITTEN IN CAPITAL LETTERS FOR YOU.", "THIS IS ALMOST all capital."),
    ("change_case:english_lowercase", {}, "this is all written in lowercase letters for you.", "this is Not lowercase."),
    ("change_case:english_lowercase", {}, "this is all written in lowercase letters for you.",
     "ceci est une phrase entièrement écrite en minuscules pour vous."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Tell me a joke."}, "tell me a joke. Why did...", "Sure! Tell me a joke."),
    ("combination:two_responses", {}, "Answer one.\n******\nAnswer two.", "Same.\n******\nSame."),
    ("combination:two_responses", {}, "Answer one.\n******\nAnswer two.", "A\n******\n\n******\nB"),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name] at [address]", "Dear [name]"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\np.s. bye", "Hi. PS bye"),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi.\nP.P.S bye", "Hi.\nP.S. bye"),
    ("detectable_format:constrained_response", {}, "My answer is maybe.", "My answer is probably."),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', '{"a": 1,}'),
    ("detectable_format:multiple_sections", {"num_sections": 2, "section_spliter": "SECTION"},
     "SECTION 1\nA\nSECTION 2\nB", "SECTION 1\nA\nSection 2\nB"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n- two", "* one\n* two\n* three"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "* one\n**bold** line", "* one\n  - nested"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and **two**", "*one* and * *"),
    ("detectable_format:title", {}, "<<Ein Titel über Ümlaute>>\ntext", "<< >>\ntext"),
    ("keywords:existence", {"keywords": ["Alpha", "beta"]}, "ALPHA then Beta", "alpha only"),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "category is fine", "a Cat sat"),
    ("keywords:frequency", {"keyword": "dog", "frequency": 2, "relation": "at least"}, "dog Dog", "dog"),
    ("keywords:frequency", {"keyword": "dog", "frequency": 2, "relation": "less than"}, "dog", "dog Dog"),
    ("keywords:letter_frequency", {"letter": "a", "let_frequency": 3, "let_relation": "at least"}, "aAa", "aa"),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"}, "## tag", "# tag"),
    ("language:response_language", {"language": "de"},
     "Das ist ein kurzer Text in deutscher Sprache über das Wetter.", "This is a short text in English about the weather."),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
     "First part.\n\n\"Then, second part.", "First part.\n\nNext part."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "one\n***\ntwo", "one\n***\n\n***\ntwo"),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"},
     "One here. Two here. Three here.", "One here. Two here."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "One here. Two here.", "One here. Two here. Three here."),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, "one two three", "one two"),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"}, "one two", "one two three"),
    ("punctuation:no_comma", {}, "No commas here.", "One, two."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, 'Text. any other questions?"', "Any other questions? Yes."),
    ("startend:quotation", {}, '  "quoted"  ', '"not closed'),
]


@pytest.mark.parametrize(("iid", "kw", "good", "bad"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_positive_and_negative(iid, kw, good, bad):
    assert chk(iid, good, **kw) is True
    assert chk(iid, bad, **kw) is False


def test_every_type_has_cases():
    assert {c[0] for c in CASES} == set(INSTRUCTION_TYPES)
    assert len(INSTRUCTION_TYPES) == 25


@pytest.mark.parametrize("n", [4, 5, 6])
def test_word_boundary_at_least_and_less_than(n):
    """5 words: 'at least 5' passes at exactly 5, 'less than 5' fails at exactly 5."""
    text = " ".join(["w"] * n)
    assert chk("length_constraints:number_words", text, num_words=5, relation="at least") is (n >= 5)
    assert chk("length_constraints:number_words", text, num_words=5, relation="less than") is (n < 5)


def test_sentence_splitting_handles_abbreviations_quotes_and_json():
    assert count_sentences("Dr. Smith met Mr. Jones at 3 p.m. today. They talked.") == 2
    assert count_sentences('"One is here. Two is here. Three is here."') == 3
    assert count_sentences('{"answer": "One is here. Two is here."}') == 2
    assert count_sentences("") == 0


def test_word_tokens_keep_abbreviations_and_split_punctuation():
    assert word_tokens("P.S. NASA-led, U.S.A. won't!") == ["P.S.", "NASA-led", ",", "U.S.A.", "won't", "!"]


def test_language_detection_is_deterministic_and_no_letters_counts_as_followed():
    text = "Ceci est un court texte écrit en français."
    assert {chk("language:response_language", text, language="fr") for _ in range(20)} == {True}
    assert chk("language:response_language", "12345 !!!", language="fr") is True


@pytest.mark.parametrize(
    ("iid", "kw", "match"),
    [
        ("keywords:letter_frequency", {"let_frequency": 3, "let_relation": "at least"}, "missing required kwargs"),
        ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 3, "let_relation": "at least"}, "single character"),
        ("length_constraints:number_words", {"num_words": 3, "relation": "at most"}, "one of"),
        ("length_constraints:number_words", {"num_words": -1, "relation": "at least"}, ">= 0"),
        ("punctuation:no_comma", {"bogus": 1}, "unknown kwargs"),
        ("no_such:type", {}, "unknown instruction id"),
        ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"},
         "nth_paragraph"),
    ],
)
def test_bad_kwargs_raise_instead_of_substituting(iid, kw, match):
    with pytest.raises(InputError, match=match):
        build_instruction(iid, kw)


def test_none_kwargs_are_absent():
    assert build_instruction("punctuation:no_comma", {"num_words": None})("ok") is True

"""The 25 IFEval verifiable instructions, written from the published definitions (Zhou et al. 2023).

Each instruction id maps to the keyword arguments it requires and a pure check ``str -> bool``.
The semantics follow the reference ``instructions.py``: thresholds are "less than" (count < N) or
"at least" (count >= N); paragraphs are split by ``***``, sections by ``<splitter> <number>``,
placeholders are ``[...]``, titles ``<<...>>``, highlights ``*x*`` (and ``**x**``), bullets are lines
starting with ``*`` or ``-``. Two deliberate differences, both fail-closed:

* a missing or invalid keyword argument raises :class:`~cleanroom.errors.InputError` naming the
  instruction and the argument; the reference silently draws a random value instead (two official
  letter-frequency prompts ask for ``!`` and ``#``, which lm-eval replaces by a random letter: we
  count the character that was asked for).
* keywords given as regular expressions in the reference are matched literally here
  (``re.escape``); no official keyword contains a regex metacharacter, so scores are unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cleanroom.ifeval.text as _text
from cleanroom.errors import InputError
from cleanroom.jsonl import loads

RELATIONS = ("less than", "at least")
_ANY = object()


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == "less than" else count >= threshold


@dataclass(frozen=True)
class Instruction:
    """One constructed instruction: its id, its validated kwargs and its check."""

    instruction_id: str
    kwargs: Mapping[str, Any] = field(hash=False)
    check: Callable[[str], bool] = field(repr=False, compare=False, hash=False)

    def __call__(self, response: str) -> bool:
        return bool(self.check(response))


# ---------------------------------------------------------------- check factories (kwargs -> check)

def _language(kw):
    lang = kw["language"]

    def check(r):
        detected = _text.detect_language(r)
        return detected is None or detected == lang

    return check


def _num_sentences(kw):
    return lambda r: _compare(_text.count_sentences(r), kw["relation"], kw["num_sentences"])


def _placeholders(kw):
    return lambda r: len(re.findall(r"\[.*?\]", r)) >= kw["num_placeholders"]


def _bullets(kw):
    def check(r):
        stars = re.findall(r"^\s*\*[^\*].*$", r, flags=re.MULTILINE)
        dashes = re.findall(r"^\s*-.*$", r, flags=re.MULTILINE)
        return len(stars) + len(dashes) == kw["num_bullets"]

    return check


_CONSTRAINED = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def _constrained(kw):
    return lambda r: any(option in r.strip() for option in _CONSTRAINED)


def _highlights(kw):
    def check(r):
        n = sum(1 for h in re.findall(r"\*[^\n\*]*\*", r) if h.strip("*").strip())
        n += sum(1 for h in re.findall(r"\*\*[^\n\*]*\*\*", r) if h[2:-2].strip())
        return n >= kw["num_highlights"]

    return check


def _sections(kw):
    pattern = r"\s?" + re.escape(kw["section_spliter"].strip()) + r"\s?\d+\s?"
    return lambda r: len(re.split(pattern, r)) - 1 >= kw["num_sections"]


def _paragraphs(kw):
    def check(r):
        parts = re.split(r"\s?\*\*\*\s?", r)
        n = len(parts)
        for i, part in enumerate(parts):
            if not part.strip():
                if i in (0, len(parts) - 1):
                    n -= 1
                else:
                    return False
        return n == kw["num_paragraphs"]

    return check


def _postscript(kw):
    marker = kw["postscript_marker"].strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return lambda r: bool(re.findall(pattern, r.lower(), flags=re.MULTILINE))


def _keywords(kw):
    words = sorted(kw["keywords"])
    return lambda r: all(re.search(re.escape(w), r, flags=re.IGNORECASE) for w in words)


def _keyword_frequency(kw):
    word = kw["keyword"].strip()
    return lambda r: _compare(len(re.findall(re.escape(word), r, flags=re.IGNORECASE)), kw["relation"], kw["frequency"])


def _num_words(kw):
    return lambda r: _compare(_text.count_words(r), kw["relation"], kw["num_words"])


def _json(kw):
    def check(r):
        value = r.strip()
        for prefix in ("```json", "```Json", "```JSON", "```"):
            if value.startswith(prefix):
                value = value[len(prefix):]
                break
        value = value.removesuffix("```").strip()
        try:
            loads(value, strict=False)  # json.loads' leniency, as IFEval's reference checks it
        except ValueError:  # not JSON, or nested past the recursion limit (json.loads: a RecursionError)
            return False
        return True

    return check


_PUNCT = {".", ",", "?", "!", "'", '"'}


def _first_word(kw):
    want = kw["first_word"].lower()

    def check(r):
        paragraphs = re.split(r"\n\n", r)
        n = sum(1 for p in paragraphs if p.strip())
        nth = kw["nth_paragraph"]
        if nth > n:
            return False
        paragraph = paragraphs[nth - 1].strip()
        if not paragraph:
            return False
        word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
        first = ""
        for ch in word:
            if ch in _PUNCT:
                break
            first += ch.lower()
        return n == kw["num_paragraphs"] and first == want

    return check


def _forbidden(kw):
    words = sorted(set(kw["forbidden_words"]))
    return lambda r: not any(re.search(r"\b" + re.escape(w) + r"\b", r, flags=re.IGNORECASE) for w in words)


def _two_responses(kw):
    def check(r):
        valid = []
        parts = r.split("******")
        for i, part in enumerate(parts):
            if not part.strip():
                if i not in (0, len(parts) - 1):
                    return False
            else:
                valid.append(part)
        return len(valid) == 2 and valid[0].strip() != valid[1].strip()

    return check


def _repeat_prompt(kw):
    prompt = kw["prompt_to_repeat"].strip().lower()
    return lambda r: r.strip().lower().startswith(prompt)


def _end(kw):
    phrase = kw["end_phrase"].strip().lower()
    return lambda r: r.strip().strip('"').lower().endswith(phrase)


def _title(kw):
    return lambda r: any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", r))


def _letter_frequency(kw):
    letter = kw["letter"].lower()
    return lambda r: _compare(r.lower().count(letter), kw["let_relation"], kw["let_frequency"])


def _english_case(case_ok):
    """A checker factory: the response passes *case_ok* (all upper / all lower) and reads as English."""

    def make(kw):
        def check(r):
            if not case_ok(r):
                return False
            detected = _text.detect_language(r)
            return detected is None or detected == "en"

        return check

    return make


_english_capital = _english_case(str.isupper)
_english_lowercase = _english_case(str.islower)


def _no_comma(kw):
    return lambda r: "," not in r


def _capital_words(kw):
    def check(r):
        n = sum(1 for w in _text.word_tokens(r) if w.isupper())
        return _compare(n, kw["capital_relation"], kw["capital_frequency"])

    return check


def _quotation(kw):
    def check(r):
        v = r.strip()
        return len(v) > 1 and v[0] == '"' and v[-1] == '"'

    return check


# id -> (required kwargs with their kind, factory). Kinds: int (>= 0), "pos" (>= 1), str, "rel", "words", "char".
_SPEC: dict[str, tuple[dict[str, Any], Callable]] = {
    "change_case:capital_word_frequency": ({"capital_frequency": int, "capital_relation": "rel"}, _capital_words),
    "change_case:english_capital": ({}, _english_capital),
    "change_case:english_lowercase": ({}, _english_lowercase),
    "combination:repeat_prompt": ({"prompt_to_repeat": str}, _repeat_prompt),
    "combination:two_responses": ({}, _two_responses),
    "detectable_content:number_placeholders": ({"num_placeholders": int}, _placeholders),
    "detectable_content:postscript": ({"postscript_marker": str}, _postscript),
    "detectable_format:constrained_response": ({}, _constrained),
    "detectable_format:json_format": ({}, _json),
    "detectable_format:multiple_sections": ({"num_sections": int, "section_spliter": str}, _sections),
    "detectable_format:number_bullet_lists": ({"num_bullets": int}, _bullets),
    "detectable_format:number_highlighted_sections": ({"num_highlights": int}, _highlights),
    "detectable_format:title": ({}, _title),
    "keywords:existence": ({"keywords": "words"}, _keywords),
    "keywords:forbidden_words": ({"forbidden_words": "words"}, _forbidden),
    "keywords:frequency": ({"frequency": int, "keyword": str, "relation": "rel"}, _keyword_frequency),
    "keywords:letter_frequency": ({"let_frequency": int, "let_relation": "rel", "letter": "char"}, _letter_frequency),
    "language:response_language": ({"language": str}, _language),
    "length_constraints:nth_paragraph_first_word": (
        {"first_word": str, "nth_paragraph": "pos", "num_paragraphs": int},
        _first_word,
    ),
    "length_constraints:number_paragraphs": ({"num_paragraphs": int}, _paragraphs),
    "length_constraints:number_sentences": ({"num_sentences": int, "relation": "rel"}, _num_sentences),
    "length_constraints:number_words": ({"num_words": int, "relation": "rel"}, _num_words),
    "punctuation:no_comma": ({}, _no_comma),
    "startend:end_checker": ({"end_phrase": str}, _end),
    "startend:quotation": ({}, _quotation),
}

INSTRUCTION_TYPES: tuple[str, ...] = tuple(sorted(_SPEC))


def _validate(instruction_id: str, name: str, kind: Any, value: Any, where: str) -> Any:
    def bad(expected: str) -> InputError:
        return InputError(
            f"{where}: instruction {instruction_id!r} kwarg {name!r} must be {expected}, got {value!r}; "
            "fix the prompt file"
        )

    if kind is int or kind == "pos":
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if kind == "pos" else 0):
            raise bad("an integer >= 1" if kind == "pos" else "an integer >= 0")
    elif kind is str:
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
    elif kind == "rel":
        if value not in RELATIONS:
            raise bad(f"one of {RELATIONS}")
    elif kind == "char":
        if not isinstance(value, str) or len(value) != 1:
            raise bad("a single character")
    elif kind == "words":
        if not isinstance(value, list | tuple) or not value or not all(isinstance(w, str) and w for w in value):
            raise bad("a non-empty list of non-empty strings")
        value = list(value)
    return value


def build_instruction(instruction_id: str, kwargs: Mapping[str, Any] | None, *, where: str = "prompt") -> Instruction:
    """Construct one instruction, validating its kwargs; never substitutes a missing argument.

    ``None`` values are treated as absent (older IFEval files pad kwargs with nulls). Unknown ids,
    missing required kwargs, unknown kwargs and out-of-range values raise ``InputError``.
    """
    spec = _SPEC.get(instruction_id)
    if spec is None:
        raise InputError(
            f"{where}: unknown instruction id {instruction_id!r}; supported: {', '.join(INSTRUCTION_TYPES)}"
        )
    required, factory = spec
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    unknown = sorted(set(given) - set(required))
    if unknown:
        raise InputError(
            f"{where}: instruction {instruction_id!r} got unknown kwargs {unknown}; expected {sorted(required)}"
        )
    missing = sorted(set(required) - set(given))
    if missing:
        raise InputError(
            f"{where}: instruction {instruction_id!r} is missing required kwargs {missing}; "
            "the prompt file must give them (no random substitute is drawn)"
        )
    clean = {name: _validate(instruction_id, name, kind, given[name], where) for name, kind in required.items()}
    if instruction_id == "length_constraints:nth_paragraph_first_word" and clean["nth_paragraph"] > clean["num_paragraphs"]:
        raise InputError(
            f"{where}: nth_paragraph={clean['nth_paragraph']} > num_paragraphs={clean['num_paragraphs']}"
        )
    return Instruction(instruction_id, clean, factory(clean))

"""A programmatic teacher: builds a response that satisfies a prompt's verifiable instructions.

Used where a model cannot write yet (the pipeline's tiny profile: a random model produces noise).
The teacher composes sentences from a fixed bank (no commas, no all-capital words, no keyword of the
generator's lists, none of the letters q z x j), adds what each instruction asks for, lays the text
out in the requested structure, and searches the body length until every checker passes; if none
does it raises, so an unsatisfiable prompt is an error, never a silently wrong example.

:func:`degrade_response` produces the opposite: a text violating a given instruction (checked), for
the rejected side of preference pairs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from cleanroom.errors import InputError
from cleanroom.ifeval.checkers import build_instruction
from cleanroom.ifeval.io import PromptRecord
from cleanroom.ifeval.scoring import loose_variants

_BANK = [
    "This topic has a long history that many people find interesting.",
    "Small daily steps often lead to steady progress over time.",
    "People learn best when they can try things for themselves.",
    "A good plan starts with a clear and simple goal.",
    "Many towns have their own stories about how this began.",
    "It helps to ask people who have done it before.",
    "The details matter more than most people think at first.",
    "Some parts are easy and other parts take patience.",
    "Children and adults can both like it in different ways.",
    "A short walk outside can make the idea easier to see.",
    "The best results come from careful work and honest notes.",
    "There is always something new to notice on a second look.",
    "Friends can share the work and make it more fun.",
    "Weather and seasons change how it looks from month to month.",
    "Good tools help but curiosity matters even more.",
    "Writing down what you see makes it easier to remember.",
    "Mistakes are normal and they often teach the most.",
    "Local groups often meet to talk about their progress.",
    "Reading about the past shows how much has changed.",
    "A calm and steady pace usually works better than rushing.",
    "Sharing what you learn helps others start their own path.",
    "Simple materials are often enough to begin.",
    "Over the years people have found many clever methods.",
    "The main idea is simple even when the details are not.",
]
_CAPS = ["NOTE", "GOAL", "PLAN", "TEAM", "CORE", "STEP", "HOPE", "TIME"]
_SIZES = [3, 5, 8, 1, 2, 4, 6, 10, 12, 16, 20, 25, 30, 36, 44]


def _sentences(k: int, rng: np.random.Generator) -> list[str]:
    order = rng.permutation(len(_BANK))
    return [_BANK[int(order[i % len(_BANK)])] for i in range(k)]


def _compose(record: PromptRecord, n: int, rng: np.random.Generator) -> str:
    """A response obeying *record*'s instructions: the content they demand, laid out, then finished."""
    spec = {iid: dict(kw) for iid, kw in zip(record.instruction_id_list, record.kwargs, strict=True)}
    body = _required_content(spec) + _sentences(n, rng)
    return _finish(spec, _layout(spec, body))


def _required_content(spec: dict[str, dict[str, Any]]) -> list[str]:
    """Sentences the keyword, letter, capital-word, placeholder and highlight instructions ask for."""
    extras: list[str] = []
    if "keywords:existence" in spec:
        extras.append("This answer also mentions " + " and ".join(spec["keywords:existence"]["keywords"]) + ".")
    kf = spec.get("keywords:frequency")
    if kf and kf["relation"] == "at least":
        extras.append(f"The word {kf['keyword']} matters here: " + " ".join([kf["keyword"]] * kf["frequency"]) + ".")
    lf = spec.get("keywords:letter_frequency")
    if lf and lf["let_relation"] == "at least":
        extras.append("Letter check: " + " ".join([lf["letter"] * 3] * math.ceil(lf["let_frequency"] / 3)) + ".")
    cf = spec.get("change_case:capital_word_frequency")
    if cf and cf["capital_relation"] == "at least":
        extras.append("Remember these: " + " ".join(_CAPS[i % len(_CAPS)] for i in range(cf["capital_frequency"])) + ".")
    ph = spec.get("detectable_content:number_placeholders")
    if ph:
        extras.append("Please fill in " + " and ".join(f"[field {i + 1}]" for i in range(ph["num_placeholders"])) + ".")
    hl = spec.get("detectable_format:number_highlighted_sections")
    if hl:
        extras += [f"This is *important point {i + 1}* to keep in mind." for i in range(hl["num_highlights"])]
    return extras


def _layout(spec: dict[str, dict[str, Any]], body: list[str]) -> str:
    """The sentences arranged as the one layout instruction asks (two responses, paragraphs, sections, bullets)."""

    def blocks(k: int) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in range(k)]
        for i, s in enumerate(body):
            out[i % k].append(s)
        return out

    if "combination:two_responses" in spec:
        a, b = blocks(2)
        return " ".join(a) + "\n******\n" + "Here is another answer. " + " ".join(b)
    if "length_constraints:number_paragraphs" in spec:
        return "\n***\n".join(" ".join(b) for b in blocks(spec["length_constraints:number_paragraphs"]["num_paragraphs"]))
    if "length_constraints:nth_paragraph_first_word" in spec:
        kw = spec["length_constraints:nth_paragraph_first_word"]
        parts = [" ".join(b) for b in blocks(kw["num_paragraphs"])]
        word = kw["first_word"]
        parts[kw["nth_paragraph"] - 1] = f"{word.capitalize()} this part begins. " + parts[kw["nth_paragraph"] - 1]
        if "detectable_format:title" in spec:  # on its own line inside paragraph 1, not before it
            parts[0] += "\n<<A Short Answer>>"
        return "\n\n".join(parts)
    if "detectable_format:multiple_sections" in spec:
        kw = spec["detectable_format:multiple_sections"]
        return "\n".join(
            f"{kw['section_spliter']} {i + 1}\n" + " ".join(b) for i, b in enumerate(blocks(kw["num_sections"]))
        )
    if "detectable_format:number_bullet_lists" in spec:
        k = spec["detectable_format:number_bullet_lists"]["num_bullets"]
        return "Here are the main points.\n" + "\n".join("* " + " ".join(b) for b in blocks(k))
    if "detectable_format:constrained_response" in spec:
        return "My answer is yes. " + " ".join(body)
    return " ".join(body)


def _finish(spec: dict[str, dict[str, Any]], text: str) -> str:
    """Title, postscript, end phrase, JSON wrapping, repeated prompt, case and quotation, in that order."""
    if "detectable_format:title" in spec and "length_constraints:nth_paragraph_first_word" not in spec:
        text = "<<A Short Answer>>\n" + text
    if "detectable_content:postscript" in spec:
        marker = spec["detectable_content:postscript"]["postscript_marker"]
        text += f"\n{marker} This is a short note to close."
    if "startend:end_checker" in spec:
        text += "\n" + spec["startend:end_checker"]["end_phrase"]
    if "detectable_format:json_format" in spec:
        text = json.dumps({"answer": text.replace("\n", " ")})
    if "combination:repeat_prompt" in spec:
        text = spec["combination:repeat_prompt"]["prompt_to_repeat"] + "\n" + text
    if "change_case:english_lowercase" in spec:
        text = text.lower()
    if "change_case:english_capital" in spec:
        text = text.upper()
    if "startend:quotation" in spec:
        text = f'"{text}"'
    return text


def teacher_response(prompt_record: PromptRecord, rng: np.random.Generator) -> str:
    """A response satisfying every (strict) instruction of ``prompt_record``; InputError if none found."""
    instructions = prompt_record.instructions()
    for n in _SIZES:
        text = _compose(prompt_record, n, rng)
        if all(ins(text) for ins in instructions):
            return text
    raise InputError(
        f"prompt key {prompt_record.key!r}: the teacher cannot satisfy {list(prompt_record.instruction_id_list)} "
        "together; the combination is contradictory or unsupported"
    )


def _mutations(text: str, kwargs: Mapping[str, Any]) -> list[str]:
    words = " ".join(str(w) for k in ("forbidden_words", "keywords") for w in kwargs.get(k, []))
    extra = [str(kwargs[k]) for k in ("keyword", "letter") if k in kwargs]
    filler = " ".join(_BANK * 4)
    return [
        "Sure, here it is.\n" + text.replace("*", "").replace("<<", "").replace(">>", "").replace("P.S.", "").replace("P.P.S", ""),
        text.split(".")[0][:40],
        text + "\nOkay, BUT ALSO THIS: " + (words + " " + " ".join(e * 12 for e in extra) + " ") * 3 + filler + ", Done, Yes.",
        "okay, " + text.lower().replace('"', "").replace("*", "") + "\nby the way, that was it",
        text.upper().replace('"', "") + ", MORE",
        "Ok.",
    ]


def degrade_response(text: str, instruction: tuple[str, Mapping[str, Any]] | str, rng: np.random.Generator) -> str:
    """A variant of ``text`` that violates ``instruction`` (id or ``(id, kwargs)``), strictly and if possible loosely.

    Raises InputError when no mutation violates it (the instruction is then not degradable by text edits).
    """
    iid, kwargs = (instruction, {}) if isinstance(instruction, str) else instruction
    ins = build_instruction(iid, kwargs, where="degrade_response")
    candidates = _mutations(text, ins.kwargs)
    order = [int(i) for i in rng.permutation(len(candidates))]
    strict_only = None
    for i in order:
        cand = candidates[i]
        if ins(cand):
            continue
        if not any(ins(v) for v in loose_variants(cand) if v.strip()):
            return cand
        strict_only = strict_only or cand
    if strict_only is not None:
        return strict_only
    raise InputError(f"could not degrade a response for {iid!r} with kwargs {dict(ins.kwargs)}")

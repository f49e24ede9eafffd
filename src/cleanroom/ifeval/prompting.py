"""Completion-style few-shot prompt for base models: no chat template, no control tokens.

A base model continues text; it follows instructions best when the document it continues is a list
of instruction/response pairs. The format and examples are fixed (``FEW_SHOT_DIGEST`` is their
sha256) so every model compared sees exactly the same prefix. Generation stops at ``STOP``, the
start of the next example. Each example response satisfies its own instructions (a test checks it).
"""

from __future__ import annotations

import hashlib

HEADER = (
    "Below are requests, each followed by a response that follows every instruction in the request "
    "exactly.\n\n"
)
TEMPLATE = "### Request:\n{prompt}\n\n### Response:\n"
STOP = "\n### Request:"

# (prompt, instruction_id_list, kwargs, response): checked by tests/ifeval/test_prompting.py.
EXAMPLES: tuple[tuple[str, list[str], list[dict], str], ...] = (
    (
        "Write two sentences about autumn leaves. Do not use any commas.",
        ["punctuation:no_comma", "length_constraints:number_sentences"],
        [{}, {"relation": "less than", "num_sentences": 3}],
        "Autumn leaves turn red and gold before they fall. They cover the ground like a soft blanket.",
    ),
    (
        "Describe a good breakfast in exactly 3 bullet points using markdown such as * point. "
        "Your entire response should be in lowercase letters.",
        ["detectable_format:number_bullet_lists", "change_case:english_lowercase"],
        [{"num_bullets": 3}, {}],
        "* a warm bowl of oatmeal with fruit\n* a glass of fresh orange juice\n* a cup of hot tea",
    ),
    (
        "Give a title wrapped in double angular brackets such as <<title>> to a short note about rain "
        "and end your response with the exact phrase Is there anything else I can help with?",
        ["detectable_format:title", "startend:end_checker"],
        [{}, {"end_phrase": "Is there anything else I can help with?"}],
        "<<Rain on the Roof>>\nRain taps gently on the roof and the garden drinks it in.\n"
        "Is there anything else I can help with?",
    ),
)


def _prefix() -> str:
    return HEADER + "".join(TEMPLATE.format(prompt=p) + r + "\n\n" for p, _, _, r in EXAMPLES)


FEW_SHOT_PREFIX = _prefix()
FEW_SHOT_DIGEST = hashlib.sha256((FEW_SHOT_PREFIX + TEMPLATE + STOP).encode("utf-8")).hexdigest()


def few_shot_prompt(instruction_prompt: str) -> str:
    """The few-shot prefix followed by ``instruction_prompt`` and an open response slot."""
    return FEW_SHOT_PREFIX + TEMPLATE.format(prompt=instruction_prompt.strip())


def zero_shot_prompt(instruction_prompt: str) -> str:
    """The same request/response format without examples: the prompt side of SFT and DPO records."""
    return TEMPLATE.format(prompt=instruction_prompt.strip())


def clean_completion(text: str) -> str:
    """Cut a completion at the next example's header (if the stop string was not applied)."""
    return text.split(STOP, 1)[0].strip()

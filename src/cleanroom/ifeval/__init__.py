"""IFEval-compatible instruction-following evaluation: checkers, scoring, eval set, base-model prompting.

Public names are re-exported from private modules; nothing here imports torch.
"""

from __future__ import annotations

from cleanroom.ifeval.checkers import INSTRUCTION_TYPES, Instruction, build_instruction
from cleanroom.ifeval.evalset import GENERATOR_DIGEST, check_overlap, generate_prompts, make_eval_set
from cleanroom.ifeval.io import PromptRecord, file_sha256, read_prompts, read_responses
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST, few_shot_prompt
from cleanroom.ifeval.scoring import format_summary, loose_variants, score_record, score_responses, summarize
from cleanroom.ifeval.teacher import degrade_response, teacher_response

__all__ = [
    "FEW_SHOT_DIGEST",
    "GENERATOR_DIGEST",
    "check_overlap",
    "degrade_response",
    "few_shot_prompt",
    "generate_prompts",
    "make_eval_set",
    "teacher_response",
    "INSTRUCTION_TYPES",
    "Instruction",
    "PromptRecord",
    "build_instruction",
    "file_sha256",
    "format_summary",
    "loose_variants",
    "read_prompts",
    "read_responses",
    "score_record",
    "score_responses",
    "summarize",
]

"""IFEval-compatible instruction-following evaluation: checkers, scoring, eval set, base-model prompting.

Public names are re-exported from private modules; nothing here imports torch.
"""

from __future__ import annotations

from cleanroom.ifeval.checkers import INSTRUCTION_TYPES, Instruction, build_instruction
from cleanroom.ifeval.io import PromptRecord, file_sha256, read_prompts, read_responses
from cleanroom.ifeval.scoring import format_summary, loose_variants, score_record, score_responses, summarize

__all__ = [
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

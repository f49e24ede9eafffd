"""AST code gates: keep model loading, chat templates, special tokens and unsafe loading in the loader.

``run_gates(load_config())`` scans the configured paths and returns a :class:`GateReport`;
``cleanroom gates`` and ``pytest --cleanroom-gates`` are thin wrappers around it. The rules are
listed in :data:`RULES` (ids CR101–CR902); see :mod:`cleanroom.code_gates.checker` for why an AST and
not grep.
"""

from __future__ import annotations

from cleanroom.code_gates.checker import check_tree
from cleanroom.code_gates.config import GateConfig, load_config
from cleanroom.code_gates.discovery import find_pyproject
from cleanroom.code_gates.files import DEFAULT_EXCLUDES, iter_python_files
from cleanroom.code_gates.report import GateReport
from cleanroom.code_gates.rules import RULES, RULES_BY_ID, Rule
from cleanroom.code_gates.runner import FileResult, check_source, run_gates
from cleanroom.code_gates.violation import Violation
from cleanroom.code_gates.waivers import Waiver, find_waivers

__all__ = [
    "DEFAULT_EXCLUDES",
    "RULES",
    "RULES_BY_ID",
    "FileResult",
    "GateConfig",
    "GateReport",
    "Rule",
    "Violation",
    "Waiver",
    "check_source",
    "check_tree",
    "find_pyproject",
    "find_waivers",
    "iter_python_files",
    "load_config",
    "run_gates",
]

"""A peft stage refuses to run in a process Unsloth has patched, and says how to resume without it."""

from __future__ import annotations

import sys
import types

import pytest

from cleanroom.errors import ConfigError
from cleanroom.pipeline.training import refuse_patched_process


def test_dpo_refuses_a_process_where_unsloth_was_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "unsloth", raising=False)
    refuse_patched_process("dpo")  # a clean process: nothing to refuse
    monkeypatch.setitem(sys.modules, "unsloth", types.ModuleType("unsloth"))
    with pytest.raises(ConfigError, match=r"dpo: Unsloth was imported in this process.*with --resume"):
        refuse_patched_process("dpo")

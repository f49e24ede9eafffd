"""Argument types shared by the subcommands: a bad value is argparse's one-line usage error (exit 2)."""

from __future__ import annotations

import argparse

from cleanroom.artifacts.layout import is_name


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}; expected an integer >= {low}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is not >= {low}; pass an integer >= {low}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (a count of tokens or processes: 0 or fewer is a mistake, never a default)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (a seed: numpy's generators refuse a negative one, so it is refused here, at the argument)."""
    return _int_at_least(text, 0)


def name(text: str) -> str:
    """A run id or record-id label: letters, digits, ``_ . -``, not starting with a dot (it names a directory
    or a part of every record id: ``eval/<label>:<key>``), checked before any model is loaded."""
    if not is_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} must match [A-Za-z0-9_.-]+ and not start with '.'")
    return text


def reason(text: str) -> str:
    """A stated reason (``--allow-instruct REASON``): recorded in provenance, so it must say something."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the reason is empty; say why, e.g. --allow-instruct 'instruct baseline'")
    return text


__all__ = ["name", "non_negative_int", "positive_int", "reason"]

"""Argument types shared by the subcommands: a bad value is argparse's one-line usage error (exit 2)."""

from __future__ import annotations

import argparse

from cleanroom.artifacts.layout import is_name


def positive_int(text: str) -> int:
    """An integer >= 1 (a count of tokens or processes: 0 or fewer is a mistake, never a default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}; expected an integer >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1; pass a positive integer")
    return value


def name(text: str) -> str:
    """A run id or record-id label: letters, digits, ``_ . -``, not starting with a dot (it names a directory
    or a part of every record id: ``eval/<label>:<key>``), checked before any model is loaded."""
    if not is_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} must match [A-Za-z0-9_.-]+ and not start with '.'")
    return text


__all__ = ["name", "positive_int"]

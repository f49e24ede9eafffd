"""PLACEHOLDER being written now: eval score|run|make-set|compare. Replace this whole module."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    pass

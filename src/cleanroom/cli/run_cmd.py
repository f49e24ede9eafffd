"""PLACEHOLDER being written now: run stage1. Replace this whole module."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    pass

"""PLACEHOLDER being written now: verify/trace/env (provenance). Replace this whole module."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    pass

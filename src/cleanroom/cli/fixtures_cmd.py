"""``cleanroom fixtures``: build the offline fixtures if needed and print where they are."""

from __future__ import annotations

import argparse
import json

from cleanroom.fixtures import build_all


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fixtures", help="build the offline fixtures (Qwen2.5 tokenizer, tiny base, SmolLM2 GGUF)")
    p.add_argument("--json", action="store_true", help="print {name: directory} as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    paths = build_all()
    if args.json:
        print(json.dumps(paths, indent=2))
    else:
        for name, path in paths.items():
            print(f"{name:20s} {path}")
    return 0

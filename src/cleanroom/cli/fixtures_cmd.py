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
    fixtures = build_all()
    if args.json:
        print(json.dumps({name: path for name, (path, _) in fixtures.items()}, indent=2))
    else:
        for name, (path, status) in fixtures.items():
            note = "" if status == "verified" else ("  (unverified: built before its digests were recorded; "
                                                    "delete it and run `cleanroom fixtures` to rebuild)")
            print(f"{name:20s} {path}{note}")
    return 0

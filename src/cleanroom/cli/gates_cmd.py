"""``cleanroom gates [PATH ...] [--json] [--config pyproject.toml] [--no-cache]``: the AST code gates.

Prints one line per violation (``path:line:col RULE message``) and a summary with every waiver.
Exit 0 clean, 1 violations, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gates",
        help="AST code gates: loading, chat templates, special tokens, unsafe loading outside the loader",
        description="Run the code gates over PATHs (default: [tool.cleanroom.gates] paths in pyproject.toml).",
    )
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help="files or folders (default: the configured paths)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of lines")
    p.add_argument(
        "--config",
        metavar="PYPROJECT",
        default=None,
        help="pyproject.toml to read (default: the nearest one)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="check every file from scratch; do not read or write .cleanroom-cache/",
    )
    p.add_argument(
        "--list-rules", action="store_true", help="print the rule ids and what they forbid, then exit"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cleanroom.gates import RULES, load_config, run_gates

    if args.list_rules:
        for rule in RULES:
            scope = "outside loader modules" if rule.loader_exempt else "everywhere"
            print(f"{rule.id} {rule.name}: {rule.forbids} ({scope})")
        return 0
    config = load_config(args.config)
    report = run_gates(config, args.paths or None, use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        for line in report.lines():
            print(line)
        for line in report.summary():
            print(line, file=sys.stderr if report.ok else sys.stdout)
    return 0 if report.ok else 1

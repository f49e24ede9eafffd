"""``cleanroom gates [PATH ...]``: the AST code gates.

Prints one finding per line (``path:line:col RULE message``, or ``--format json|github|sarif``)
and a summary with every waiver. ``--write-baseline FILE`` accepts today's findings; ``--baseline
FILE`` then fails only on new ones. Exit 0 clean, 1 findings, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from cleanroom import __version__
from cleanroom.code_gates import RULES, load_config, run_gates
from cleanroom.code_gates.baseline import apply_baseline, read_baseline, write_baseline
from cleanroom.code_gates.config import with_overrides
from cleanroom.code_gates.formats import github_lines, sarif


def _rules(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gates",
        help="AST code gates: loading, chat templates, special tokens, unsafe loading outside the loader",
        description="Run the code gates over PATHs (default: [tool.cleanroom.gates] paths in pyproject.toml).",
    )
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help="files or folders (default: the configured paths)"
    )
    p.add_argument(
        "--format",
        choices=("text", "json", "github", "sarif"),
        default="text",
        help="text lines, JSON, GitHub workflow annotations or SARIF 2.1.0 (default: text)",
    )
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument(
        "--config",
        metavar="PYPROJECT",
        default=None,
        help="pyproject.toml to read (default: the nearest one)",
    )
    p.add_argument(
        "--loader-module",
        action="append",
        metavar="PATH",
        help="a loader module (file, folder or dotted name), added to loader_modules; repeatable",
    )
    p.add_argument("--exclude", action="append", metavar="PATH", help="a path or glob to skip; repeatable")
    p.add_argument(
        "--select", type=_rules, metavar="RULES", help="comma-separated rule ids to run (replaces)"
    )
    p.add_argument(
        "--extend-select", type=_rules, metavar="RULES", help="rule ids to run as well, e.g. CR103"
    )
    p.add_argument("--ignore", type=_rules, metavar="RULES", help="comma-separated rule ids not to report")
    p.add_argument("--baseline", metavar="FILE", help="report only findings this baseline does not hold")
    p.add_argument("--write-baseline", metavar="FILE", help="record today's findings in FILE and exit 0")
    p.add_argument(
        "--no-cache", action="store_true", help="check every file from scratch; no cache read or written"
    )
    p.add_argument(
        "--list-rules", action="store_true", help="print the rule ids and what they forbid, then exit"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:


    if args.list_rules:
        for rule in RULES:
            scope = "outside loader modules" if rule.loader_exempt else "everywhere"
            off = "" if rule.default else ", off by default"
            print(f"{rule.id} {rule.name}: {rule.forbids} ({scope}{off})")
        return 0
    config = with_overrides(
        load_config(args.config),
        loader_modules=args.loader_module,
        exclude=args.exclude,
        select=args.select,
        extend_select=args.extend_select,
        ignore=args.ignore,
    )
    accepted = read_baseline(args.baseline) if args.baseline else None
    report = run_gates(config, args.paths or None, use_cache=not args.no_cache)
    if args.write_baseline:
        n = write_baseline(report.violations, config.root, args.write_baseline)
        print(
            f"cleanroom gates: wrote {n} finding(s) to {args.write_baseline}; "
            f"run with --baseline {args.write_baseline} to fail only on new ones"
        )
        return 0
    if accepted is not None:
        new, baselined, stale = apply_baseline(report.violations, config.root, accepted)
        report = replace(report, violations=new, baselined=baselined, stale=stale)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    elif fmt == "sarif":
        print(json.dumps(sarif(report.violations, config.root, __version__), indent=1))
    else:
        for line in github_lines(report.violations) if fmt == "github" else report.lines():
            print(line)
        for line in report.summary():
            print(line, file=sys.stderr if report.ok else sys.stdout)
    return 0 if report.ok else 1


__all__ = ["add_parser", "run"]

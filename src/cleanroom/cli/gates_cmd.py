"""``cleanroom gates [PATH ...]``: the AST code gates.

Prints one finding per line (``path:line:col RULE message``, or ``--format json|github|sarif``)
and a summary with every waiver. ``--write-baseline FILE`` accepts today's findings; ``--baseline
FILE`` then fails only on new ones. Exit 0 clean, 1 findings, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cleanroom.code_gates.baseline import refuse_overwriting
from cleanroom.code_gates.command import FORMATS, gates_command, rule_lines


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
        choices=FORMATS,
        default="text",
        help="text lines, JSON, GitHub workflow annotations or SARIF 2.1.0 (default: text)",
    )
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument(
        "--config",
        metavar="PYPROJECT",
        default=None,
        help="pyproject.toml to read (default: the nearest one above the PATHs that has a [tool.cleanroom.gates] "
        "table, up to the repository root; else the defaults)",
    )
    p.add_argument(
        "--loader-module",
        action="append",
        metavar="PATH",
        help="a loader module (file, folder or dotted name), added to loader_modules; repeatable",
    )
    p.add_argument("--exclude", action="append", metavar="PATH", help="a path or glob to skip; repeatable")
    p.add_argument(
        "--no-default-excludes",
        dest="default_excludes",
        action="store_const",
        const=False,
        default=None,
        help="also check folders named build, dist, node_modules, site-packages, and hidden folders other than "
        "version control, environments (virtualenv, conda) and caches (skipped and listed by default)",
    )
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
        print("\n".join(rule_lines()))
        return 0
    if args.write_baseline is not None:
        refuse_overwriting(Path(args.write_baseline))
    out = gates_command(
        config=args.config, paths=args.paths, fmt="json" if args.json else args.format,
        loader_modules=args.loader_module, exclude=args.exclude, select=args.select,
        extend_select=args.extend_select, ignore=args.ignore, baseline=args.baseline,
        write_baseline_to=args.write_baseline, use_cache=not args.no_cache,
        default_excludes=args.default_excludes,
    )
    for line in out.stdout:
        print(line)
    for line in out.stderr:
        print(line, file=sys.stderr)
    return out.exit_code


__all__ = ["add_parser", "run"]

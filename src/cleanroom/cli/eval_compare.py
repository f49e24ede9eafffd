"""``cleanroom eval compare A.jsonl B.jsonl [C.jsonl]``: paired comparison of verdict files.

Mounted by ``cli/eval_cmd.py`` as the ``compare`` action: it calls :func:`add_arguments` on its
subparser and dispatches to :func:`run`. Exit 0 after printing the table (a regression is a verdict,
not a tool failure); 1 when the files were produced under different conditions other than the model
(each difference listed; ``--allow-difference FIELD --difference-reason TEXT`` accepts one); 2 on unreadable
files, a record that fails its own digest, the same file given twice, mismatched keys, or too few keys or
``--min-n`` below 200 without ``--override-reason`` (the library's ``require_min_n`` decides).

Each waiver has its own reason and is reported with it: ``--override-reason`` waives only the minimum n,
``--difference-reason`` accepts only the differences named by ``--allow-difference``; the Markdown notes
and every ``--json`` row (``notes``) carry the same lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cleanroom.cli._types import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="VERDICTS.jsonl",
                        help="2 or 3 verdict files scored on the same keys (A B [C]; family A-B, B-C, A-C)")
    parser.add_argument("--level", choices=("prompt", "instruction"), default="prompt",
                        help="pair per prompt (follow_all_instructions) or per instruction (clustered by key)")
    parser.add_argument("--mode", choices=("strict", "loose"), default="strict", help="which IFEval scoring to compare")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per comparison (with its waivers, reasons and notes) instead of "
                             "Markdown")
    parser.add_argument("--min-n", type=positive_int, default=200, metavar="N",
                        help="paired keys needed for a verdict (default 200); fewer keys, or any N below 200, "
                             "needs --override-reason")
    parser.add_argument("--override-reason", default=None, metavar="TEXT",
                        help="why a verdict below the minimum n is acceptable; waives the minimum n only, and is "
                             "printed with the verdict")
    parser.add_argument("--allow-difference", action="append", default=[], metavar="FIELD",
                        help="accept files that differ in FIELD (a recorded condition such as "
                             "generation.temperature, or a section such as generation); repeatable; needs "
                             "--difference-reason. Without it, files produced under different prompts, rendering, "
                             "scorer or generation settings are refused (exit 1)")
    parser.add_argument("--difference-reason", default=None, metavar="TEXT",
                        help="why the --allow-difference fields are acceptable; accepts those differences only "
                             "(not the minimum n), and is printed with them")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval confidence (default 0.95)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # heavy optional: scipy (a second to import; every other subcommand starts without it)
    from cleanroom.stats.compare import compare_verdict_files, format_markdown

    rows = compare_verdict_files(
        args.files, level=args.level, mode=args.mode, min_n=args.min_n,
        override_reason=args.override_reason, confidence=args.confidence,
        allow_differences=args.allow_difference, difference_reason=args.difference_reason,
    )
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        print(format_markdown(rows), end="")
    return 0

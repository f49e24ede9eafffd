"""``cleanroom verify``, ``cleanroom trace`` and ``cleanroom env``: check a run, walk a record's ancestry, report the environment."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="re-check a run offline: record digests, chains, files, manifests, attestation, parents",
        description="Exit 0 when the run is untouched, 1 naming the first broken edge, 2 when RUN_DIR is not a run.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="runs/<run_id>")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(handler=run_verify)

    p = sub.add_parser("trace", help="walk a record back to its roots (source records, base model files)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="runs/<run_id>")
    p.add_argument("record_id", metavar="RECORD_ID", help="a record id, e.g. eval/base:1001")
    p.add_argument("--json", action="store_true", help="print the ancestry tree as JSON")
    p.set_defaults(handler=run_trace)

    p = sub.add_parser("env", help="environment report: library versions, hardware, git state")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=run_env)


def run_verify(args: argparse.Namespace) -> int:
    from cleanroom.verify import verify_run

    report = verify_run(args.run_dir)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    elif report.ok:
        c = report.counts
        print(
            f"ok: {args.run_dir}: {c['stages']} stages, {c['files']} files, {c['records']} records, "
            f"{c['parents']} parent links verified"
        )
        for note in report.notes:
            print(f"note: {note}")
    else:
        assert report.first is not None
        print(f"BROKEN: {report.first.message}")
        if len(report.errors) > 1:
            print(f"({len(report.errors) - 1} further broken edges; --json lists them)")
    return 0 if report.ok else 1


def run_trace(args: argparse.Namespace) -> int:
    from cleanroom.verify import format_trace, trace_record

    node = trace_record(args.run_dir, args.record_id)
    print(json.dumps(node.to_dict(), indent=2, ensure_ascii=False) if args.json else format_trace(node))
    return 0


def run_env(args: argparse.Namespace) -> int:
    from cleanroom.environment import environment_report, format_report

    report = environment_report()
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0

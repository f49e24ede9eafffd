"""``cleanroom verify``, ``cleanroom trace`` and ``cleanroom env``: check a run, walk a record's ancestry, report the environment."""

from __future__ import annotations

import argparse
import json

from cleanroom.ancestry import CheckedTrace, trace_checked
from cleanroom.artifacts.layout import EVAL_RUN_COMMAND, STAGE1_COMMAND, run_command
from cleanroom.environment import environment_report, format_report
from cleanroom.errors import ConfigError
from cleanroom.verify import VerifyReport, format_trace, list_records, verify_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="re-check a run offline: record digests, chains, files, manifests, attestation, parents",
        description="Exit 0 when every check ran and the run is untouched; 1 naming the first broken edge (BROKEN), "
        "or when some checks could not run here (PARTIAL: a base model, stage input or external artifact the run "
        "recorded is not on this machine; 0 with --allow-unchecked, still printed as PARTIAL); 2 when RUN_DIR is "
        "not a run or an argument is bad.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="runs/<run_id>")
    p.add_argument("--json", action="store_true", help="print the full report as JSON (status, errors, unchecked)")
    p.add_argument("--remap", action="append", default=[], metavar="RECORDED=LOCAL",
                   help="look for what the run recorded under the absolute path RECORDED (a base model, an input) "
                        "under LOCAL on this machine; repeatable; the recorded digests still decide")
    p.add_argument("--allow-unchecked", action="store_true",
                   help="exit 0 on a PARTIAL report (nothing broken, some checks not run here); it still prints "
                        "PARTIAL and lists what was not checked")
    p.add_argument("--rehash-models", action="store_true",
                   help="re-read every base model file instead of trusting the hash cache (slow on large models)")
    p.set_defaults(handler=run_verify)

    p = sub.add_parser(
        "trace", help="walk a record back to its roots (source records, base model files)",
        description="Without RECORD_ID, list every record id of the run with its file and line. With it, print "
        "the record's ancestry, checked against the digests of the records and record files it read: exit 0 "
        "when they match; 1 when one does not (the ancestry is printed as UNVERIFIED, with the first broken "
        "edge) or when the run has not finished (printed below verify's `unfinished:` line); 2 when RUN_DIR is "
        "not a run or RECORD_ID is not in it.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="runs/<run_id>")
    p.add_argument("record_id", metavar="RECORD_ID", nargs="?", default=None,
                   help="a record id, e.g. eval/base:1001 (omit to list the run's ids)")
    p.add_argument("--json", action="store_true", help="print the ancestry tree as JSON")
    p.set_defaults(handler=run_trace)

    p = sub.add_parser("env", help="environment report: library versions, hardware, git state")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=run_env)


def run_verify(args: argparse.Namespace) -> int:
    remap: dict[str, str] = {}
    for old, new in map(_remap_pair, args.remap):
        if remap.get(old, new) != new:
            raise ConfigError(f"--remap {old}= is given twice ({remap[old]} and {new}); give each RECORDED path once")
        remap[old] = new
    report = verify_run(args.run_dir, rehash_models=args.rehash_models, remap=remap)
    code = 0 if report.ok or (report.status == "partial" and args.allow_unchecked) else 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    elif report.unfinished is not None:
        print(_unfinished_line(args.run_dir, report.unfinished))
    else:
        print("\n".join(_verify_lines(report, args.run_dir, args.allow_unchecked)))
    return code


#: How to continue an unfinished run, by the command that made it (:func:`~cleanroom.artifacts.layout.run_command`).
_CONTINUE = {
    STAGE1_COMMAND: "Continue it with the same `cleanroom run` command plus --resume",
    EVAL_RUN_COMMAND: "Continue it by running the same `cleanroom eval run` command again, with the same arguments "
                      "(--out and --run-id included; eval run has no --resume: the same arguments resume it)",
}


def _unfinished_line(run_dir: str, stage: str) -> str:
    """What ``verify`` and ``trace`` say of a run that has not finished (no attestation to check against), so
    the two commands never word the same state differently; both exit 1 on it. The advice names the command
    that made the run (:data:`_CONTINUE`); should its config no longer read, only "the command that made it"."""
    advice = _CONTINUE.get(run_command(run_dir) or "", "Continue it with the command that made it")
    return f"unfinished: {run_dir}: stage {stage} not done; verify checks finished runs. {advice}"


def _remap_pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not (sep and old and new):
        raise ConfigError(f"--remap {text!r}: expected RECORDED=LOCAL, e.g. --remap /data/models/qwen=/mnt/qwen")
    return old, new


def _verify_lines(report: VerifyReport, run_dir: str, allow_unchecked: bool) -> list[str]:
    """The text report: its first line starts ``ok:``, ``PARTIAL:`` or ``BROKEN:``; one line per unchecked group."""
    c = report.counts
    unchecked = [f"unchecked: {u.message}" for u in report.unchecked]
    if report.first is not None:
        further = len(report.errors) - 1
        return [f"BROKEN: {report.first.message}",
                *([f"({further} further broken edges; --json lists them)"] if further else []), *unchecked]
    if report.unchecked:
        verdict = "accepted by --allow-unchecked, but " if allow_unchecked else ""
        return [
            f"PARTIAL: {run_dir}: {report.not_run} check{'s' * (report.not_run != 1)} did not run "
            f"({report.not_run_what} not present on this machine); nothing checked is broken; {verdict}the run "
            "is not verified",
            f"passed: {c['stages']} stages, {c['files']} files, {c['records']} records, {c['parents']} parent links, "
            f"{c['inputs']} stage inputs, {c['model_files']} base model files",
            *unchecked,
        ]
    return [f"ok: {run_dir}: {c['stages']} stages, {c['files']} files, {c['records']} records, {c['parents']} "
            "parent links verified",
            *([f"ok: {c['model_files']} base model files match the digests in the stages' provenance"]
              if c["model_files"] else [])]


def run_trace(args: argparse.Namespace) -> int:
    if args.record_id is None:
        rows = list_records(args.run_dir)
        if args.json:
            print(json.dumps([{"record_id": r, "artifact": a, "line": n} for r, a, n in rows], indent=2,
                             ensure_ascii=False))
        else:
            print("\n".join(f"{rid}  [{artifact} line {line}]" for rid, artifact, line in rows))
        return 0
    checked = trace_checked(args.run_dir, args.record_id)
    if args.json:
        verification = checked.report.to_dict() | {"not_rehashed": list(checked.not_rehashed)}
        print(json.dumps(checked.node.to_dict() | {"verification": verification}, indent=2, ensure_ascii=False))
    else:
        print("\n".join(_trace_lines(checked, args.run_dir)))
    return 0 if checked.verified else 1


def _trace_lines(checked: CheckedTrace, run_dir: str) -> list[str]:
    """The tree, marked UNVERIFIED above it and BROKEN below it when what it was read from fails its digests;
    below ``verify``'s own ``unfinished:`` line when the run has not finished (what was read is not a pass
    then); else followed by what was checked and what was not."""
    tree, report = format_trace(checked.node), checked.report
    if report.first is not None:
        first = report.first
        where = f"{first.file}:{first.line}" if first.line is not None else first.file
        return [f"UNVERIFIED ancestry of {checked.node.record_id}: the records it was read from do not match their "
                "digests", tree,
                f"BROKEN: {where}: {first.check}: expected {first.expected}, found {first.found}; run `cleanroom "
                f"verify {run_dir}` for every broken edge"]
    if report.unfinished is not None:
        return [_unfinished_line(run_dir, report.unfinished), tree]
    c = report.counts
    skipped = len(checked.not_rehashed)
    left = ([f"{skipped} parent link target{'s' * (skipped != 1)} outside the run's record files (weights, external "
             "files)"] if skipped else []) + (["the base model files shown (their digests as recorded)"]
                                             if checked.shows_model_files else [])
    return [tree, f"checked: {c['records']} records in {c['files']} record files match their digests and "
            f"manifests, {c['parents']} parent links",
            *([f"not re-hashed by trace: {' and '.join(left)}; `cleanroom verify {run_dir}` checks them"] if left else [])]


def run_env(args: argparse.Namespace) -> int:
    report = environment_report()
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0

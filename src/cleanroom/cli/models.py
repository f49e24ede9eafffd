"""``cleanroom inspect-model`` and ``cleanroom scan-data``: check a model or a data file before renting a GPU.

Exit codes: 0 clean; 1 instruct or contaminated (every reason listed), or a model directory without
weights (the probe could not run: NOT CHECKED); 2 unreadable or missing input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cleanroom.cli._types import positive_int, reason
from cleanroom.inspection import inspect_model
from cleanroom.scan import scan_data_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect-model", help="sentinel checks and base-or-instruct decision for a local model")
    p.add_argument("path", help="local model directory")
    p.add_argument("--gguf-file", default=None, help="GGUF file name inside PATH")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--allow-instruct", metavar="REASON", default=None, type=reason, help="accept an instruct model, recording why")
    p.add_argument("--no-probe", action="store_true", help="skip the behavioural probe (tokenizer and config only)")
    p.set_defaults(handler=run_inspect)

    s = sub.add_parser("scan-data", help="scan an SFT/DPO/eval JSONL file for control tokens and template leakage")
    s.add_argument("file", help="JSONL file: {prompt, completion} | {prompt, chosen, rejected} | {prompt}")
    s.add_argument("--tokenizer", required=True, help="tokenizer directory (cleaned by the loader)")
    s.add_argument("--max-length", type=positive_int, default=1 << 20, help="maximum tokens per rendered example")
    s.add_argument("--json", action="store_true", help="print the findings as JSON")
    s.set_defaults(handler=run_scan)


def _probe_line(probe: dict, not_run: str | None) -> str:
    """The probe as it happened: its scores, or why it did not run (never scores of None read as a pass)."""
    if not_run is not None:
        return f"probe: not run ({not_run}); base-or-instruct decided by static markers only"
    if probe.get("p_eot") is None:
        return f"probe: not run ({'; '.join(probe.get('notes') or ['no scores'])})"
    return f"probe: p_eot={probe['p_eot']} p_role={probe['p_role']} instruct={probe.get('is_instruct')}"


def run_inspect(args: argparse.Namespace) -> int:
    """Exit 0 only for what was checked: a model whose weights were probed, or (``--no-probe``, asked for)
    its tokenizer and config. A directory without weights asked about as a model is exit 1: unchecked."""

    report = inspect_model(Path(args.path), gguf_file=args.gguf_file, allow_instruct_reason=args.allow_instruct,
                           probe=not args.no_probe)
    if args.json:
        print(json.dumps(report, indent=2))
    elif report["clean"] is False:
        _print_not_clean(report)
    else:
        _print_clean(report)
    return 0 if report["clean"] is True or report.get("verdict") == "TOKENIZER-ONLY CLEAN" else 1


def _print_not_clean(report: dict) -> None:
    probe = report["probe"]  # None: the loader refused the model before a probe result existed
    print(f"NOT CLEAN {report['model']}" + (": instruct/chat model (pass --allow-instruct REASON to accept it)"
                                            if probe is not None else ""))
    for why in report["reasons"]:
        print(f"  - {why}")
    if probe is not None:
        print(f"  probe: p_eot={probe['p_eot']} p_role={probe['p_role']} threshold={probe['threshold']}"
              if probe["p_eot"] is not None else "  " + _probe_line(probe, report["probe_not_run"]))
        for warning in probe["warnings"]:
            print(f"  warning: {warning}")


def _print_clean(report: dict) -> None:
    probe, not_run = report["probe"], report["probe_not_run"]
    scope = "" if not_run is None else f" ({_checked(report['configs'])})"
    print(f"{report['verdict']} {report['model']}{scope}: base EOS {report['base_eos_id']}, sentinels "
          f"{report['sentinels']['checked']} ok (reference: {report['sentinels']['reference']})")
    print("  " + _probe_line(probe, not_run))
    for warning in probe.get("warnings", []):
        print(f"  warning: {warning}")
    for change in report["tokenizer_changes"]:
        print(f"  cleaned: {change}")
    if report["verdict"] == "NOT CHECKED":
        print("  the model was not checked: add its weights, or pass --no-probe to check the tokenizer alone")


def _checked(configs: list[str]) -> str:
    """What a tokenizer-only check read: the tokenizer and the config files that were there, naming those that
    were not (the markers that read them did not run)."""
    gguf = any(c.endswith(" metadata") for c in configs)  # a GGUF's config: its metadata, no JSON file
    absent = [] if gguf else [n for n in ("config.json", "generation_config.json") if n not in configs]
    return ("checked: " + ", ".join(["tokenizer", *configs])
            + (f"; no {' or '.join(absent)}: the markers that read {'them' if len(absent) > 1 else 'it'} did not run"
               if absent else ""))


def run_scan(args: argparse.Namespace) -> int:

    findings = scan_data_file(Path(args.file), Path(args.tokenizer), max_length=args.max_length)
    if args.json:
        print(json.dumps({"file": args.file, "clean": not findings, "findings": findings}, indent=2))
    elif findings:
        for f in findings:
            print(f"{args.file}:{f['line']}: {f['field']} {f['position']} {f['token']}: {f['why']}")
    else:
        print(f"clean: {args.file}")
    return 1 if findings else 0

"""``cleanroom inspect-model`` and ``cleanroom scan-data``: check a model or a data file before renting a GPU.

Exit codes: 0 clean; 1 instruct or contaminated (every reason listed), or a model directory without
weights (the probe could not run: NOT CHECKED); 2 unreadable or missing input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cleanroom import guard
from cleanroom.errors import ContaminationError, InputError, MissingFileError
from cleanroom.jsonl import iter_jsonl
from cleanroom.loader import CleanModelLoader

# The three record shapes (issue 3) by their content fields; other keys (key, provenance, instruction_id_list,
# kwargs, ...) are metadata and allowed. A content-like key outside these shapes is an error, not ignored.
_SHAPES = {
    frozenset(): "eval",
    frozenset({"completion"}): "sft",
    frozenset({"chosen", "rejected"}): "dpo",
}
_CONTENT_KEYS = frozenset({"completion", "chosen", "rejected", "response", "responses", "answer", "output",
                           "target", "messages", "conversation", "conversations"})
_SCHEMA_HINT = "expected SFT {prompt, completion}, DPO {prompt, chosen, rejected} or eval {prompt} (plus metadata)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect-model", help="sentinel checks and base-or-instruct decision for a local model")
    p.add_argument("path", help="local model directory")
    p.add_argument("--gguf-file", default=None, help="GGUF file name inside PATH")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--allow-instruct", metavar="REASON", default=None, help="accept an instruct model, recording why")
    p.add_argument("--no-probe", action="store_true", help="skip the behavioural probe (tokenizer and config only)")
    p.set_defaults(handler=run_inspect)

    s = sub.add_parser("scan-data", help="scan an SFT/DPO/eval JSONL file for control tokens and template leakage")
    s.add_argument("file", help="JSONL file: {prompt, completion} | {prompt, chosen, rejected} | {prompt}")
    s.add_argument("--tokenizer", required=True, help="tokenizer directory (cleaned by the loader)")
    s.add_argument("--max-length", type=int, default=1 << 20, help="maximum tokens per rendered example")
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
    path = Path(args.path)
    loader = CleanModelLoader(
        path,
        gguf_file=args.gguf_file,
        allow_instruct=args.allow_instruct is not None,
        allow_instruct_reason=args.allow_instruct,
        probe=not args.no_probe,
    )
    has_weights = loader.gguf_file is not None or any(loader.path.glob("*.safetensors"))
    not_run = ("--no-probe" if args.no_probe else
               None if has_weights else f"no weights in {path} (*.safetensors or --gguf-file)")
    try:
        if not_run is None:
            _, _, prov = loader.load()
        else:
            _, prov = loader.load_tokenizer()
    except ContaminationError as exc:
        result = getattr(exc, "probe", None)
        reasons = list(result.reasons) if result is not None else [str(exc)]
        if args.json:
            report = {"model": str(path), "clean": False, "reasons": reasons, "error": str(exc),
                      "checked": "tokenizer-only" if not_run else "weights",
                      "probe": result.to_dict() if result is not None else None, "probe_not_run": not_run}
            print(json.dumps(report, indent=2))
        else:
            print(f"NOT CLEAN {path}" + (": instruct/chat model (pass --allow-instruct REASON to accept it)"
                                          if result is not None else ""))
            for reason in reasons:
                print(f"  - {reason}")
            if result is not None:
                print(f"  probe: p_eot={result.p_eot} p_role={result.p_role} threshold={result.threshold}"
                      if result.p_eot is not None else "  " + _probe_line(result.to_dict(), not_run))
                for warning in result.warnings:
                    print(f"  warning: {warning}")
        return 1
    probe = prov.get("probe") or {}
    unchecked = not_run is not None and not args.no_probe  # asked about a model, but only its tokenizer was seen
    verdict = "CLEAN" if not_run is None else "TOKENIZER-ONLY CLEAN" if args.no_probe else "NOT CHECKED"
    report = {
        "model": str(path),
        "clean": True if not_run is None else None,  # None: undecided, the probe did not run
        "verdict": verdict,
        "checked": "weights" if not_run is None else "tokenizer-only",
        "probe_not_run": not_run,
        "base_eos_id": prov["base_eos_id"],
        "sentinels": prov["sentinels"],
        "probe": probe,
        "tokenizer_changes": prov["tokenizer_changes"],
        "allow_instruct_reason": prov["allow_instruct_reason"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        scope = "" if not_run is None else " (tokenizer and config only)"
        print(f"{verdict} {path}{scope}: base EOS {prov['base_eos_id']}, sentinels {prov['sentinels']['checked']} ok "
              f"(reference: {prov['sentinels']['reference']})")
        print("  " + _probe_line(probe, not_run))
        for warning in probe.get("warnings", []):
            print(f"  warning: {warning}")
        for change in prov["tokenizer_changes"]:
            print(f"  cleaned: {change}")
        if unchecked:
            print("  the model was not checked: add its weights, or pass --no-probe to check the tokenizer alone")
    return 1 if unchecked else 0


def _record_shape(path: Path, lineno: int, rec: object) -> tuple[str, tuple[str, ...]]:
    """``(shape, content fields in scan order)`` of one record; InputError naming the line and field otherwise."""
    if not isinstance(rec, dict):
        raise InputError(f"{path} line {lineno}: a JSON object is needed, got {type(rec).__name__}; {_SCHEMA_HINT}")
    if not isinstance(rec.get("prompt"), str):
        got = "missing" if "prompt" not in rec else type(rec["prompt"]).__name__
        raise InputError(f"{path} line {lineno}: field 'prompt' must be a string ({got}); {_SCHEMA_HINT}")
    content = frozenset(k for k in rec if k in _CONTENT_KEYS)
    shape = _SHAPES.get(content)
    if shape is None:
        unknown = sorted(content - {"completion", "chosen", "rejected"})
        if unknown:
            why = f"field {unknown[0]!r} belongs to no record shape"
        elif content & {"chosen", "rejected"} and "completion" in content:
            why = "fields 'completion' and 'chosen'/'rejected' mix the SFT and DPO shapes"
        else:
            why = f"DPO field {sorted({'chosen', 'rejected'} - content)[0]!r} is missing"
        raise InputError(f"{path} line {lineno}: {why}; {_SCHEMA_HINT}")
    fields = ("prompt", *sorted(content, key=("completion", "chosen", "rejected").index))
    for f in fields:
        if not isinstance(rec[f], str):
            raise InputError(f"{path} line {lineno}: field {f!r} must be a string, got {type(rec[f]).__name__}")
    return shape, fields


def require_path(path: Path, *, kind: str, what: str) -> None:
    """MissingFileError unless *path* exists and is a ``file`` or ``dir`` (*kind*), saying which it is instead."""
    if not path.exists():
        raise MissingFileError(f"{path}: no such file or directory; pass {what}")
    if kind == "file" and path.is_dir():
        raise MissingFileError(f"{path}: is a directory; pass {what}")
    if kind == "dir" and not path.is_dir():
        raise MissingFileError(f"{path}: is a file, not a directory; pass {what}")


def read_scan_records(path: Path) -> list[tuple[int, dict, str, tuple[str, ...]]]:
    """``(line, record, shape, content fields)`` of every non-blank line; InputError on the first malformed one.

    Needs no tokenizer, so a bad file is refused before the tokenizer is loaded.
    """
    require_path(path, kind="file", what="the JSONL file to scan")
    rows = []
    for lineno, rec in iter_jsonl(path, what="data file"):  # an empty file is an input error, never "clean"
        shape, fields = _record_shape(path, lineno, rec)
        rows.append((lineno, rec, shape, fields))
    return rows


def scan_records(path: Path, tokenizer: object, *, max_length: int,
                 rows: list[tuple[int, dict, str, tuple[str, ...]]] | None = None) -> list[dict]:
    """Every finding in the file: ``{line, field, position, token, why}``; InputError on malformed lines.

    Each record is exactly one shape (see ``_SHAPES``); SFT answers go through ``guard.render_example``,
    DPO pairs through ``guard.check_pair`` (identical sides are a finding). *rows* are
    :func:`read_scan_records`' (read here when not given).
    """
    findings: list[dict] = []
    forbidden = guard.forbidden_ids(tokenizer)
    eos = guard.base_eos_id(tokenizer)
    for lineno, rec, shape, fields in read_scan_records(path) if rows is None else rows:
        for f in fields:
            for offset, token in guard.literal_control_strings(tokenizer, rec[f]):
                findings.append({"line": lineno, "field": f, "position": f"char {offset}", "token": token,
                                 "why": "literal control-token text: a template was applied upstream"})
            ids = guard.encode(tokenizer, rec[f], add_bos=False)
            bad = [(i, t) for i, t in enumerate(ids) if t in forbidden or (t == eos)]
            for i, t in bad:
                findings.append({"line": lineno, "field": f, "position": f"token {i}", "token": f"{t}",
                                 "why": "control/EOS ID inside the text"})
        try:
            if shape == "sft":
                guard.render_example(tokenizer, rec["prompt"], rec["completion"], max_length=max_length,
                                     record=lineno)
            elif shape == "dpo":
                guard.check_pair(tokenizer, rec["prompt"], rec["chosen"], rec["rejected"],
                                 max_length=max_length, record=lineno)
        except (ContaminationError, InputError) as exc:
            field = next((f for f in ("chosen", "rejected") if f"{lineno} {f}" in str(exc)), fields[-1])
            if shape == "dpo" and rec["chosen"] == rec["rejected"]:
                field = "chosen/rejected"
            findings.append({"line": lineno, "field": field, "position": "-", "token": "-", "why": str(exc)})
    return findings


def run_scan(args: argparse.Namespace) -> int:
    rows = read_scan_records(Path(args.file))  # a bad file fails before the tokenizer's seconds of loading
    require_path(Path(args.tokenizer), kind="dir", what="--tokenizer DIR, a tokenizer or model directory")
    # only the tokenizer is used: whether the model is base or instruct does not matter for scanning text
    tokenizer, _ = CleanModelLoader(args.tokenizer, probe=False).load_tokenizer(decide=False)
    findings = scan_records(Path(args.file), tokenizer, max_length=args.max_length, rows=rows)
    if args.json:
        print(json.dumps({"file": args.file, "clean": not findings, "findings": findings}, indent=2))
    elif findings:
        for f in findings:
            print(f"{args.file}:{f['line']}: {f['field']} {f['position']} {f['token']}: {f['why']}")
    else:
        print(f"clean: {args.file}")
    return 1 if findings else 0

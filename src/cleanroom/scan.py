"""Scan an SFT, DPO or eval JSONL file for chat-control tokens and template leakage (``cleanroom scan-data``).

Each line is exactly one record shape, told apart by its content fields; SFT answers are rendered through
:func:`cleanroom.guard.render_example` and DPO pairs checked by :func:`cleanroom.guard.check_pair`, the same
guards training applies, so a file that scans clean is one the trainers accept. A malformed line is an
:class:`~cleanroom.errors.InputError` naming it, raised before the tokenizer's seconds of loading.
"""

from __future__ import annotations

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


def scan_data_file(path: Path, tokenizer_dir: Path, *, max_length: int) -> list[dict]:
    """Every finding in the JSONL file *path* (see :func:`scan_records`), encoded with the cleaned tokenizer
    of *tokenizer_dir*; a malformed file fails before the tokenizer is loaded."""

    rows = read_scan_records(path)  # a bad file fails before the tokenizer's seconds of loading
    require_path(tokenizer_dir, kind="dir", what="--tokenizer DIR, a tokenizer or model directory")
    # only the tokenizer is used: whether the model is base or instruct does not matter for scanning text
    tokenizer, _ = CleanModelLoader(tokenizer_dir, probe=False).load_tokenizer(decide=False)
    return scan_records(path, tokenizer, max_length=max_length, rows=rows)

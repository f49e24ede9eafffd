"""The one JSONL reader of the package: one JSON object per line, every defect an input error at its line.

Every file cleanroom reads line by line (prompt sets, responses, verdicts, data to scan, a run's
record files) goes through :func:`read_jsonl`, so each command answers the same defect the same way:
:class:`~cleanroom.errors.InputError` (exit 2) naming ``file line N``, what was wrong and the fix.

- bytes that are not UTF-8: the byte, its offset in the line;
- a UTF-8 byte-order mark at the start (JSON forbids it, RFC 8259 §8.1);
- a blank line (a JSONL file has no empty records; a stray one usually means a concatenation bug);
- a line that is not JSON, or JSON that is not an object;
- JSON that :func:`loads` refuses although :func:`json.loads` would take it: ``NaN``/``Infinity`` (not
  JSON, RFC 8259 §6) and a number past a float's range (``1e5000``, which json.loads makes ``inf``), a key
  twice in one object (the last would silently win, so two readers could see two different records), a
  lone surrogate escape (``"\\ud800"``: no character, and a tokenizer raises a
  TypeError on it), nesting deeper than Python's recursion limit (a RecursionError, not a ValueError);
- an integer of more digits than Python converts (``sys.get_int_max_str_digits()``, 4300 by default): named
  with its field and digit count, where json.loads' own message would tell the user to change the interpreter;
- an empty file: reported as empty, never read as "no problems found" (``allow_empty=True`` for the
  record files of a run, whose manifests record their counts, zero included).

Lines end in ``\\n``; a last line without one is read like the others.

Underneath is :func:`scan_jsonl` (and :func:`scan_jsonl_bytes`), the one place that splits a file into
lines and decodes them: each line as :class:`JsonLine` (number, exact bytes, the parsed value or the
reason it is not JSON, and whether it ended in ``\\n``), judging nothing. The readers that must see the
bytes build on it and word their own verdicts: ``verify`` (each record line's exact bytes, a torn last
line as a broken edge), ``artifacts.records.RecordWriter`` (cuts a torn last line off before resuming)
and ``trace`` (a malformed record, in its ``file:line`` form).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from cleanroom.errors import InputError, MissingFileError

_BOM = b"\xef\xbb\xbf"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        dup = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise ValueError(f"key {dup!r} appears twice in one object; keep one")
    return obj


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity); write null or a number")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e5000: json.loads makes it inf, the Infinity that strict JSON refuses
        raise ValueError(f"number {text[:24]} is beyond a float's range (about 1.8e308); write a smaller number, or "
                         "the value as a string (in quotes)")
    return value


def _lone_surrogate(value: Any) -> str | None:
    """The first string (key or value) of *value* that holds a lone surrogate, or None; iterative."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return v
    return None


def loads(text: str | bytes, *, strict: bool = True) -> Any:
    """:func:`json.loads`, strict: every defect a :class:`ValueError` (see the module docstring's list).

    The one JSON parser for what a user or another tool wrote: the JSONL reader, a run's manifests, a
    model directory's JSON files. ``bytes`` must be UTF-8 (a UnicodeDecodeError, also a ValueError).
    ``strict=False`` keeps :func:`json.loads`' leniency (NaN, a repeated key, a lone surrogate) for files
    other tools read the same lenient way (a model's config.json, IFEval's JSON-format check) and refuses
    only the nesting that json.loads answers with a RecursionError.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    hooks: dict[str, Any] = (
        {"object_pairs_hook": _object, "parse_constant": _constant, "parse_float": _float} if strict else {})
    try:
        value = json.loads(text, **hooks)
    except RecursionError:
        raise ValueError("nested deeper than this reader can follow (Python's recursion limit); "
                         "flatten the structure") from None
    except ValueError as exc:
        if type(exc) is ValueError and (why := _integer_refused(text, hooks)) is not None:
            raise ValueError(why) from None
        raise
    if strict and _SURROGATE_ESCAPE.search(text) and (bad := _lone_surrogate(value)) is not None:
        raise ValueError(f"string {bad[:40]!r} holds a lone surrogate escape (\\ud800-\\udfff without its pair), "
                         "which is no character; fix the escape")
    return value


def too_long_integer(digits: str) -> str:
    """The words for an integer of more digits than Python converts (``sys.get_int_max_str_digits()``): the
    number, how many digits it has, the limit and the fix; shared with :mod:`cleanroom.yaml_reader`."""
    n = sum(ch.isdigit() for ch in digits)
    return (f"number {digits[:12]}... has {n} digits, too long: at most {sys.get_int_max_str_digits()} digits "
            "are read as an integer; write it as a string (in quotes) or shorten it")


class _LongInteger(str):
    """The digits of an integer that :func:`int` refused (Python's limit on the digits it converts)."""


def _integer_refused(text: str, hooks: dict[str, Any]) -> str | None:
    """Why :func:`json.loads` refused *text* when the reason is an integer of more digits than Python converts
    (``sys.get_int_max_str_digits()``, 4300 by default), whose own message tells the user to change the
    interpreter; None for any other ValueError. Parsed a second time, on this error path only (a ``parse_int``
    hook on every read costs three times the time of a line of token IDs), to name the field that holds it."""
    found: list[_LongInteger] = []

    def parse_int(digits: str) -> Any:
        try:
            return int(digits)
        except ValueError:
            found.append(_LongInteger(digits))
            return found[-1]

    try:
        value = json.loads(text, parse_int=parse_int, **hooks)
    except (ValueError, RecursionError):  # a refusal after the number: the number is still the first defect
        value = None
    if not found:
        return None
    path = _path_to(value, found[0])
    if path is not None and len(path) > 80:
        path = path[:77] + "..."
    return f"{f'field {path}: ' if path else ''}{too_long_integer(found[0])}"


def _path_to(value: Any, target: object) -> str | None:
    """Where *target* (by identity) sits in *value*: ``kwargs[0]['n']``; ``""`` for *value* itself, None if absent."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        v, path = stack.pop()
        if v is target:
            return path
        if isinstance(v, dict):
            stack.extend((item, f"{path}[{k!r}]" if path else _key(k)) for k, item in reversed(v.items()))
        elif isinstance(v, list):
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(v))))
    return None


def _key(key: str) -> str:
    """A top-level key as written in a message: bare when it is a plain name, else quoted (a newline or an
    escape code in a key must not reach the terminal raw)."""
    return key if key.isidentifier() else repr(key)


class JsonLine(NamedTuple):
    """One line of a JSONL file, as read: nothing judged beyond "is it JSON"."""

    number: int  # 1-based
    raw: bytes  # the line's exact bytes, without its b"\n"
    value: Any  # the parsed JSON value; None when ``error`` is set
    error: ValueError | None  # UnicodeDecodeError (not UTF-8) or json.JSONDecodeError; None when parsed
    complete: bool  # ended in b"\n"; False only for a torn last line (the bytes after the last b"\n")


def _scan(lines: Iterable[bytes]) -> Iterator[JsonLine]:
    for number, raw in enumerate(lines, start=1):
        complete = raw.endswith(b"\n")
        body = raw[:-1] if complete else raw
        value: Any = None
        error: ValueError | None = None
        try:
            value = loads(body)
        except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError and loads' own refusals
            error = exc
        yield JsonLine(number, body, value, error, complete)


def scan_jsonl(path: str | os.PathLike[str]) -> Iterator[JsonLine]:
    """Each line of the file at *path* (read as it streams) as a :class:`JsonLine`: split on ``b"\\n"``
    only, decoded as strict UTF-8, parsed with :func:`loads`; an empty file yields nothing."""
    with open(path, "rb") as fh:
        yield from _scan(fh)


def scan_jsonl_bytes(data: bytes) -> Iterator[JsonLine]:
    """:func:`scan_jsonl` over bytes already read (for a caller that also hashes or truncates them)."""
    return _scan(io.BytesIO(data))


def iter_jsonl(path: str | os.PathLike[str], *, what: str = "JSONL file",
               allow_empty: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each line of *path*; see the module docstring for what is refused.

    *what* names the file's role in the messages (``"verdict file"``, ``"prompt file"``).
    """
    p = Path(path)
    if not p.is_file():
        kind = ("does not exist" if not p.exists() else "is a directory" if p.is_dir()
                else "is not a regular file (a pipe or a device, which cannot be read twice to hash it)")
        raise MissingFileError(f"{what} {p} {kind}; pass an existing JSONL file")
    lineno = 0
    for lineno, raw, obj, error, _ in scan_jsonl(p):
        where = f"{p} line {lineno}"
        if lineno == 1 and raw.startswith(_BOM):
            raise InputError(f"{where}: starts with a UTF-8 byte-order mark; save the file as UTF-8 without BOM")
        if isinstance(error, UnicodeDecodeError):
            raise InputError(
                f"{where}: not UTF-8 (byte {raw[error.start]:#04x} at offset {error.start}); re-encode the file as UTF-8"
            )
        if error is not None and not raw.decode("utf-8").strip():
            raise InputError(f"{where}: blank line; a JSONL file holds one JSON object per line — remove it")
        if isinstance(error, json.JSONDecodeError):
            raise InputError(f"{where}: not valid JSON ({error.msg}); fix or remove the line")
        if error is not None:
            raise InputError(f"{where}: not valid JSON ({error})")
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj
    if lineno == 0 and not allow_empty:
        raise InputError(f"{what} {p} is empty (0 bytes); nothing was read, so nothing was checked")


def read_jsonl(path: str | os.PathLike[str], *, what: str = "JSONL file",
               allow_empty: bool = False) -> list[dict[str, Any]]:
    """Every object of *path*, in order (:func:`iter_jsonl`)."""
    return [obj for _, obj in iter_jsonl(path, what=what, allow_empty=allow_empty)]


__all__ = ["JsonLine", "iter_jsonl", "loads", "read_jsonl", "scan_jsonl", "scan_jsonl_bytes", "too_long_integer"]

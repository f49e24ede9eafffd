"""The one JSONL reader of the package: one JSON object per line, every defect an input error at its line.

Every file cleanroom reads line by line (prompt sets, responses, verdicts, data to scan, a run's
record files) goes through :func:`read_jsonl`, so each command answers the same defect the same way:
:class:`~cleanroom.errors.InputError` (exit 2) naming ``file line N``, what was wrong and the fix.

- bytes that are not UTF-8: the byte, its offset in the line;
- a UTF-8 byte-order mark at the start (JSON forbids it, RFC 8259 §8.1);
- a blank line (a JSONL file has no empty records; a stray one usually means a concatenation bug);
- a line that is not JSON, or JSON that is not an object;
- an empty file: reported as empty, never read as "no problems found" (``allow_empty=True`` for the
  record files of a run, whose manifests record their counts, zero included).

Lines end in ``\\n``; a last line without one is read like the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cleanroom.errors import InputError, MissingFileError

_BOM = b"\xef\xbb\xbf"


def iter_jsonl(path: str | os.PathLike[str], *, what: str = "JSONL file",
               allow_empty: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each line of *path*; see the module docstring for what is refused.

    *what* names the file's role in the messages (``"verdict file"``, ``"prompt file"``).
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{what} {p} does not exist; pass an existing JSONL file")
    lineno = 0
    with open(p, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{p} line {lineno}"
            if lineno == 1 and raw.startswith(_BOM):
                raise InputError(f"{where}: starts with a UTF-8 byte-order mark; save the file as UTF-8 without BOM")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{where}: not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}); re-encode the file as UTF-8"
                ) from None
            if not line.strip():
                raise InputError(f"{where}: blank line; a JSONL file holds one JSON object per line — remove it")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg}); fix or remove the line") from None
            if not isinstance(obj, dict):
                raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj
    if lineno == 0 and not allow_empty:
        raise InputError(f"{what} {p} is empty (0 bytes); nothing was read, so nothing was checked")


def read_jsonl(path: str | os.PathLike[str], *, what: str = "JSONL file",
               allow_empty: bool = False) -> list[dict[str, Any]]:
    """Every object of *path*, in order (:func:`iter_jsonl`)."""
    return [obj for _, obj in iter_jsonl(path, what=what, allow_empty=allow_empty)]


__all__ = ["iter_jsonl", "read_jsonl"]

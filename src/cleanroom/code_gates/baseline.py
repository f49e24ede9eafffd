"""A baseline: accept today's findings, fail only on new ones, and say which accepted ones are gone.

``cleanroom gates --write-baseline gates-baseline.json`` records every finding as

    (rule, path relative to the config root, fingerprint)

where the fingerprint is ``sha256(rule, path, the flagged lines with whitespace collapsed)``: it
survives lines inserted above (no line number in it) and re-indentation, and changes when the
flagged code itself changes. Equal fingerprints are counted, so a second copy of an accepted line is
a new finding. ``--baseline FILE`` then drops the findings the file accounts for and lists the
entries that no longer occur, so the file shrinks as the code is fixed and is deleted at zero.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from cleanroom.code_gates.files import read_regular
from cleanroom.code_gates.violation import Violation
from cleanroom.errors import ConfigError, InputError, MissingFileError
from cleanroom.fs import atomic_write_bytes, check_output_path, refuse_replacing_foreign
from cleanroom.jsonl import loads

VERSION = 1
Key = tuple[str, str, str]  # rule, root-relative path, fingerprint


def relative_path(path: str, root: Path) -> str:
    """*path* (as a finding or notice names it) relative to *root*, POSIX; the absolute path when outside it."""
    full = os.path.normpath(os.path.join(os.getcwd(), path))
    try:
        return Path(full).relative_to(root).as_posix()
    except ValueError:
        return Path(full).as_posix()


def fingerprint(rule: str, rel: str, code: str) -> str:
    """16 hex digits of sha256 over the rule, the path and the code with whitespace collapsed."""
    text = " ".join(code.split())
    return hashlib.sha256(f"{rule}\0{rel}\0{text}".encode()).hexdigest()[:16]


def keys(violations: tuple[Violation, ...] | list[Violation], root: Path) -> list[Key]:
    """The baseline key of each violation, in order (the flagged lines are read from disk; only regular files
    are opened: a CR901 finding on a FIFO or device is keyed by its message, never read)."""
    texts: dict[str, list[str]] = {}
    out: list[Key] = []
    for v in violations:
        if v.path not in texts:
            try:
                data = read_regular(Path(v.path))
            except OSError:
                data = ""
            texts[v.path] = data.decode("utf-8", "replace").splitlines() if isinstance(data, bytes) else []
        lines = texts[v.path][v.line - 1 : v.last_line]
        rel = relative_path(v.path, root)
        out.append((v.rule, rel, fingerprint(v.rule, rel, "\n".join(lines) or v.message)))
    return out


def is_baseline(path: Path) -> bool:
    """Whether *path* is a gates baseline, told by content: a JSON object that says so (``"tool": "cleanroom
    gates"``); a file too damaged to tell, or unreadable, is not."""
    try:
        data = loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("tool") == "cleanroom gates"


def refuse_overwriting(path: Path) -> None:
    """ConfigError unless *path* may receive a baseline: absent, or a baseline (:func:`is_baseline`). Anything
    else (a package.json or a source file named by mistake, an empty file, a file too damaged to tell) would be
    replaced, so it is refused with how to proceed (:func:`cleanroom.fs.refuse_replacing_foreign`, the rule of
    every command's outputs); a directory cannot be written at all."""
    if path.is_dir():
        raise ConfigError(f"--write-baseline {path}: is a directory; pass a file such as gates-baseline.json")
    check_output_path(path, "--write-baseline")  # a FIFO or device is refused before it is opened (or replaced)
    refuse_replacing_foreign("--write-baseline", path, is_baseline, "a gates baseline",
                             "pass a new file such as gates-baseline.json, or delete that file first")


def write_baseline(violations: tuple[Violation, ...], root: Path, file: str | Path) -> int:
    """Write the baseline file for *violations*; returns how many entries it holds (:func:`refuse_overwriting`
    first, so a file that is not a baseline is never replaced)."""
    refuse_overwriting(Path(file))
    entries = [
        {"rule": rule, "path": rel, "fingerprint": fp, "line": v.line, "message": v.message}
        for (rule, rel, fp), v in zip(keys(violations, root), violations, strict=True)
    ]
    entries.sort(key=lambda e: (e["path"], e["line"], e["rule"]))
    data = {"version": VERSION, "tool": "cleanroom gates", "findings": entries}
    atomic_write_bytes(file, (json.dumps(data, indent=1) + "\n").encode("utf-8"))  # never a half-written baseline
    return len(entries)


def read_baseline(file: str | Path) -> Counter[Key]:
    """The baseline's entries as a multiset; a missing or malformed file is an input error."""
    path = Path(file)
    if not path.is_file():
        raise MissingFileError(
            f"{path}: no such baseline; write one with cleanroom gates --write-baseline {path}"
        )
    try:
        data = loads(path.read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
        return Counter((e["rule"], e["path"], e["fingerprint"]) for e in data["findings"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{path}: not a cleanroom gates baseline ({exc}); rewrite it with --write-baseline {path}"
        ) from exc


def apply_baseline(
    violations: tuple[Violation, ...], root: Path, baseline: Counter[Key]
) -> tuple[tuple[Violation, ...], int, tuple[Key, ...]]:
    """(findings the baseline does not account for, how many it did, its entries that no longer occur)."""
    left = Counter(baseline)
    new: list[Violation] = []
    for key, v in zip(keys(violations, root), violations, strict=True):
        if left[key] > 0:
            left[key] -= 1
        else:
            new.append(v)
    stale = tuple(sorted(k for k, n in left.items() for _ in range(n)))
    return tuple(new), len(violations) - len(new), stale

"""What verification reports: a broken edge of a run's hash graph, the report that lists them, and the
helpers that name the first difference between what a run recorded and what is on disk."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cleanroom.errors import MissingFileError


@dataclass(frozen=True)
class Broken:
    """One broken edge of the run's hash graph."""

    file: str
    line: int | None
    check: str
    expected: Any
    found: Any

    @property
    def message(self) -> str:
        where = f"{self.file} line {self.line}" if self.line is not None else self.file
        return f"{where}: {self.check}: expected {self.expected}, found {self.found}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify_run`: ``ok`` iff no edge is broken; ``errors[0]`` is the first broken edge."""

    run_dir: str
    ok: bool
    errors: tuple[Broken, ...]
    counts: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    unfinished: str | None = None  # the first Stage 1 stage not done, for a run that never finalized

    @property
    def first(self) -> Broken | None:
        return self.errors[0] if self.errors else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir,
            "ok": self.ok,
            "counts": dict(self.counts),
            "first_broken": self.first.to_dict() if self.first else None,
            "errors": [e.to_dict() for e in self.errors],
            "notes": list(self.notes),
            "unfinished": self.unfinished,
        }


def excerpt(raw: bytes, n: int = 60) -> str:
    text = raw.decode("utf-8", errors="replace")
    return repr(text[:n] + ("..." if len(text) > n else ""))


def first_diff(expected: Any, found: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first JSON path where two values differ (dict keys sorted, lists by index)."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in sorted(set(expected) | set(found)):
            if key not in found:
                return f"{path}.{key}", expected[key], "(missing)"
            if key not in expected:
                return f"{path}.{key}", "(absent)", found[key]
            d = first_diff(expected[key], found[key], f"{path}.{key}")
            if d:
                return d
        return None
    if isinstance(expected, list) and isinstance(found, list):
        for i, (a, b) in enumerate(zip(expected, found, strict=False)):
            d = first_diff(a, b, f"{path}[{i}]")
            if d:
                return d
        if len(expected) != len(found):
            return f"{path} length", len(expected), len(found)
        return None
    if expected != found or type(expected) is not type(found):
        return path or "value", expected, found
    return None


def first_diff_line(data: bytes, want: bytes) -> int:
    for i, (a, b) in enumerate(zip(data.splitlines(), want.splitlines(), strict=False), start=1):
        if a != b:
            return i
    return min(len(data.splitlines()), len(want.splitlines())) + 1


def require_run(root: Path) -> None:
    if root.is_file():
        raise MissingFileError(f"{root}: is a file, not a directory; pass a run directory, runs/<run_id>")
    if not root.is_dir() or not (root / "run.json").is_file() or not (root / "config.resolved.yaml").is_file():
        raise MissingFileError(
            f"{root} is not a cleanroom run directory (expected run.json and config.resolved.yaml); pass runs/<run_id>"
        )


__all__ = ["Broken", "VerifyReport", "excerpt", "first_diff", "first_diff_line", "require_run"]

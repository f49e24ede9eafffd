"""What verification reports: a broken edge of a run's hash graph, a check that could not run, the report
that lists them, and the helpers that name the first difference between what a run recorded and what is
on disk."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

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


UncheckedKind = Literal["model", "input", "parent"]
#: What each kind of :class:`Unchecked` counts, singular and plural.
UNCHECKED_NOUNS = {
    "model": ("base model file", "base model files"),
    "input": ("stage input", "stage inputs"),
    "parent": ("parent link to an external artifact", "parent links to an external artifact"),
}


def _counted(kind: str, n: int) -> str:
    one, many = UNCHECKED_NOUNS[kind]
    return f"{n} {one if n == 1 else many}"


@dataclass(frozen=True)
class Unchecked:
    """A group of checks that did not run because what they check is not on this machine: the base model
    directory a stage's provenance recorded (``kind="model"``, one check per file), a stage input
    (``"input"``, one per manifest entry) or an artifact outside the run that records name as their
    parent (``"parent"``, one per link). Not a pass: a run with any is ``partial``, never ``ok``."""

    kind: UncheckedKind
    path: str  # the path looked for
    recorded_in: tuple[str, ...]  # the manifests (model, input) or record files (parent) that recorded it
    count: int  # how many checks did not run
    how: str  # how to run them
    recorded_path: str | None = None  # the path the run recorded, where --remap moved the lookup to ``path``

    @property
    def what(self) -> str:
        """``"3 base model files"``: the count and what it counts."""
        return _counted(self.kind, self.count)

    @property
    def message(self) -> str:
        moved = f"remapped from {self.recorded_path}; " if self.recorded_path is not None else ""
        return (f"{self.what} not checked: {self.path} ({moved}recorded in {', '.join(self.recorded_in)}) is not "
                f"present here; {self.how}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "recorded_in": list(self.recorded_in), "message": self.message}


def how_to_check(kind: UncheckedKind, recorded: Path) -> str:
    """What a user does to run the checks that could not run here (*recorded*: the path the run recorded, outside
    the run: a missing path inside it is a broken edge, not an unchecked one)."""
    if kind == "model":
        return (f"run `cleanroom verify` on the machine that holds the model, or pass --remap {recorded}=DIR "
                "naming the directory that holds the same files here")
    return (f"run `cleanroom verify` on the machine that holds it, or pass --remap {recorded.parent}=DIR naming "
            "the directory that holds the same file here")


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify_run`, with a status that fails closed:

    * ``"ok"``: every check ran and none found a broken edge (the only status for which ``ok`` is True);
    * ``"partial"``: nothing checked is broken, but some checks could not run (``unchecked``);
    * ``"broken"``: an edge is broken, ``errors[0]`` the first (it wins over ``partial`` and ``unfinished``);
    * ``"unfinished"``: the run never finished, so there is no attestation to check against (``verify`` checks
      nothing then; ``trace`` checks what it read, and a broken edge there still says ``broken``).
    """

    run_dir: str
    errors: tuple[Broken, ...]
    counts: dict[str, int] = field(default_factory=dict)
    unchecked: tuple[Unchecked, ...] = ()
    # the first stage not done in the run's own order (Stage 1's, or an eval run's `eval`), for a run that never
    # finalized
    unfinished: str | None = None

    @property
    def status(self) -> str:
        if self.errors:
            return "broken"
        if self.unfinished is not None:
            return "unfinished"
        return "partial" if self.unchecked else "ok"

    @property
    def ok(self) -> bool:
        """True only when every check ran and passed; a partial report is not ok."""
        return self.status == "ok"

    @property
    def not_run(self) -> int:
        """How many checks did not run (the sum over :attr:`unchecked`)."""
        return sum(u.count for u in self.unchecked)

    @property
    def not_run_what(self) -> str:
        """``"3 base model files, 1 stage input"``: the checks that did not run, by kind."""
        by_kind: dict[str, int] = {}
        for u in self.unchecked:
            by_kind[u.kind] = by_kind.get(u.kind, 0) + u.count
        return ", ".join(_counted(kind, n) for kind, n in by_kind.items())

    @property
    def first(self) -> Broken | None:
        return self.errors[0] if self.errors else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir,
            "status": self.status,
            "ok": self.ok,
            "counts": dict(self.counts),
            "first_broken": self.first.to_dict() if self.first else None,
            "errors": [e.to_dict() for e in self.errors],
            "checks_not_run": self.not_run,
            "unchecked": [u.to_dict() for u in self.unchecked],
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


__all__ = [
    "Broken",
    "UNCHECKED_NOUNS",
    "Unchecked",
    "UncheckedKind",
    "VerifyReport",
    "excerpt",
    "first_diff",
    "first_diff_line",
    "how_to_check",
    "require_run",
]

"""A content-addressed result cache for the gates, in the user cache directory (:func:`cache_folder`).

Why: the cold cost per file is CPython's parser and compiler (~1 ms for a 150-line script) and no
correct gate can skip it — ``return`` outside a function is only caught by ``compile``. A file whose
bytes did not change cannot change its verdict, so, like ruff, the raw findings are stored under

    key = sha256(file bytes)        in a store named by    salt = sha256(gates source, Python version)

The salt covers every rule and message (the gates' own source files) and the grammar (a file valid
on 3.12 may not parse on 3.11), so editing a rule or switching interpreter starts a fresh store. The
stored findings are the *raw* ones (before waivers, the loader exemption and ``disable``), which
depend on the bytes alone: changing ``[tool.cleanroom.gates]`` never needs a cold run, and the path
is re-attached at read time (a moved file hits). Waivers are re-read from the text every run (one
regex search). A corrupt or unwritable store is ignored: the cache can only make a run faster.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_folder() -> Path:
    """``$CLEANROOM_CACHE_DIR``, else ``$XDG_CACHE_HOME/cleanroom/gates``, else ``~/.cache/cleanroom/gates``.

    Outside the repository: a research repository should not grow a cache folder (nor a
    .gitignore entry for it). ``--no-cache`` turns the cache off.
    """
    explicit = os.environ.get("CLEANROOM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cleanroom" / "gates"


_MAX_ENTRIES = 200_000  # beyond this the store keeps only the files seen in this run

# One raw finding: (line, col, rule, message, end_line, callee); a compile failure is the single
# finding with rule CR901.
RawFinding = tuple[int, int, str, str, int, str]
# One fact: a forwarding loader (function name, line of its load, what it loads); see code_gates.forwarding.
Fact = tuple[str, int, str]


def _salt(extra: str = "") -> str:
    digest = hashlib.sha256(f"{sys.implementation.name}-{sys.version_info[:2]}-{extra}".encode())
    for source in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class ResultCache:
    """``get``/``put`` raw findings by file content; ``save`` writes the store back atomically."""

    def __init__(self, folder: Path | None = None, extra_salt: str = "") -> None:
        self.folder = Path(folder) if folder is not None else cache_folder()
        self.file = self.folder / f"gates-{_salt(extra_salt)}.json"
        self._old: dict[str, list[list[object]]] = {}
        self._new: dict[str, list[list[object]]] = {}
        self.hits = self.misses = 0
        try:
            loaded = json.loads(self.file.read_bytes())
            if isinstance(loaded, dict):
                self._old = loaded
        except (OSError, ValueError):
            pass

    @staticmethod
    def key(source: bytes) -> str:
        return hashlib.sha256(source).hexdigest()

    def get(self, key: str) -> list[RawFinding] | None:
        entry = self._new.get(key)
        if entry is None:
            entry = self._old.get(key)
        if entry is None:
            self.misses += 1
            return None
        try:
            found = [(int(a), int(b), str(c), str(d), int(e), str(f)) for a, b, c, d, e, f in entry]  # type: ignore[call-overload]
        except (TypeError, ValueError):
            self.misses += 1
            return None  # a hand-edited or damaged entry: recompute
        self.hits += 1
        self._new[key] = entry
        return found

    def put(self, key: str, found: list[RawFinding]) -> None:
        self._new[key] = [list(f) for f in found]

    def facts(self, key: str, compute: Callable[[], list[Fact]]) -> list[Fact]:
        """A file's facts other than its findings (its forwarding loaders: name, line, target), stored beside
        them under ``facts:`` + *key*; *compute* when absent or damaged."""
        name = "facts:" + key
        entry = self._new.get(name, self._old.get(name))
        if entry is not None:
            try:
                held = [(str(a), int(b), str(c)) for a, b, c in entry]  # type: ignore[call-overload]
                self._new[name] = entry
                return held
            except (TypeError, ValueError):
                pass  # a hand-edited or damaged entry: recompute
        self.misses += 1
        found = compute()
        self._new[name] = [list(f) for f in found]
        return found

    def save(self) -> None:
        """Write old entries plus this run's (only this run's past ``_MAX_ENTRIES``); never raises."""
        if not self.misses:
            return  # every file hit: nothing new to write
        store = self._new if len(self._old) + len(self._new) > _MAX_ENTRIES else {**self._old, **self._new}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            ignore = self.folder / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# written by cleanroom gates: a cache, never commit it\n*\n")
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".gates-", suffix=".tmp")
            with os.fdopen(fd, "w") as out:
                json.dump(store, out, separators=(",", ":"))
            os.replace(tmp, self.file)
            for stale in self.folder.glob("gates-*.json"):  # stores of older gates, another Python or helpers
                if stale != self.file:
                    stale.unlink(missing_ok=True)
        except OSError:
            pass


__all__ = ["Fact", "RawFinding", "ResultCache", "cache_folder"]

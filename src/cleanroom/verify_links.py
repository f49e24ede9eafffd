"""The run's links to what it read, checked for :mod:`cleanroom.verify`: every stage's inputs (check 3b), the
base model files each stage's provenance recorded (3c) and every record's parent links (5), with the one lookup
(``--remap``) and the one record of what did not run that the three share.

The base model's files, which live outside the run and may weigh 60 GB, are re-hashed through
:func:`~cleanroom.provenance.hash_file`'s cache, keyed by (path, size, mtime_ns, ctime_ns, inode): a write to a
file changes its ctime, so an edited ``tokenizer.json`` is re-read and caught (``rehash_models=True`` bypasses
the cache). Every other file is re-read and re-hashed (no hash cache).

A check that did not run is reported as not run, never as passed. A base model directory (3c), a stage
input (3b) or an external parent artifact (5) that is not on this machine (the run was copied elsewhere)
cannot be re-hashed here: each becomes an :class:`Unchecked` entry (what, the path looked for, the
manifests or record files that recorded it, how to check it) and the report is ``partial``, not ``ok``.
A model directory that is there but lacks a recorded file is a broken edge, not an unchecked one.
``remap`` (``--remap RECORDED=LOCAL``) looks for such paths where the same files sit on this machine.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cleanroom.broken import UNCHECKED_NOUNS, Unchecked, UncheckedKind, how_to_check
from cleanroom.errors import ConfigError
from cleanroom.provenance import hash_file

#: The count each kind of unchecked entry adds to, in the order the checks run (3b, 3c, 5).
_UNCHECKED_COUNT: dict[UncheckedKind, str] = {"input": "inputs_unchecked", "model": "model_files_unchecked",
                                      "parent": "parents_unchecked"}


def remap_pairs(remap: Mapping[str, str | os.PathLike[str]]) -> tuple[tuple[Path, Path], ...]:
    """``--remap RECORDED=LOCAL`` pairs, the longest RECORDED first; :class:`ConfigError` for one that cannot
    apply (RECORDED not absolute, LOCAL not here)."""
    pairs = []
    for old, new in remap.items():
        if not Path(old).is_absolute():
            raise ConfigError(f"--remap {old}={new}: RECORDED must be the absolute path the run recorded "
                              "(`cleanroom verify --json` lists them under unchecked)")
        if not Path(new).exists():
            raise ConfigError(f"--remap {old}={new}: {new} does not exist here; name the directory that holds "
                              f"what the run recorded under {old}")
        pairs.append((Path(old), Path(new).resolve()))
    return tuple(sorted(pairs, key=lambda pair: -len(pair[0].parts)))


class Links:
    """Checks 3b, 3c and 5 of one verification; ``fresh``, ``broken`` and ``counts`` are the verification's own
    (one digest memo, one list of broken edges, one set of counts)."""

    def __init__(self, root: Path, *, fresh: Callable[[Path], str],
                 broken: Callable[[str, int | None, str, Any, Any], None], counts: dict[str, int],
                 rehash_models: bool = False, remap: tuple[tuple[Path, Path], ...] = ()) -> None:
        self.root = root
        self.resolved_root = root.resolve()  # once: inside() runs for every parent link
        self.fresh, self.broken, self.counts = fresh, broken, counts
        self.rehash_models = rehash_models
        self.remap = remap
        self.remapped: dict[str, Path] = {}  # path looked for -> the path the run recorded, where --remap moved it
        self.outside: set[Path] = set()  # every path outside the run that the run recorded
        # (kind, path looked for) -> the manifests or record files that recorded it; and how many checks
        self.skipped: dict[tuple[UncheckedKind, str], set[str]] = {}
        self.skipped_n: Counter[tuple[UncheckedKind, str]] = Counter()
        self.not_rehashed: list[str] = []  # parent links check_parents(rehash=False) left to `cleanroom verify`

    def inside(self, path: Path) -> bool:
        """Whether *path* lies in the run directory (as given, or resolved: a model built inside the run is
        recorded by its resolved path)."""
        return path.is_relative_to(self.root) or path.is_relative_to(self.resolved_root)

    def here(self, recorded: Path) -> Path:
        """Where a path the run recorded is looked for on this machine: moved by the first ``--remap`` whose
        RECORDED holds it, else where it was recorded. A path inside the run is never moved."""
        if self.inside(recorded):
            return recorded
        self.outside.add(recorded)
        for old, new in self.remap:
            if recorded.is_relative_to(old):
                self.remapped[str(new / recorded.relative_to(old))] = recorded
                return new / recorded.relative_to(old)
        return recorded

    def not_here(self, kind: UncheckedKind, path: Path, recorded_in: Iterable[str]) -> None:
        """One check of *kind* did not run: *path*, recorded in *recorded_in*, is not on this machine.

        A path inside the run is different: the run's own files travel with it, so one that is missing is damage
        to the run (a broken edge), never a check left for another machine."""
        if self.inside(path):
            for where in sorted(set(recorded_in)):
                self.broken(str(path), None, f"{UNCHECKED_NOUNS[kind][0]} recorded in {where} exists (inside the run)",
                            "present", "missing")
            return
        self.skipped.setdefault((kind, str(path)), set()).update(recorded_in)
        self.skipped_n[kind, str(path)] += 1
        self.counts[_UNCHECKED_COUNT[kind]] += 1

    def unchecked(self) -> tuple[Unchecked, ...]:
        """The checks that did not run, one entry per (kind, path), in the order the checks run."""
        order = list(_UNCHECKED_COUNT)
        keys = sorted(self.skipped, key=lambda key: (order.index(key[0]), key[1]))
        return tuple(
            Unchecked(kind, path, tuple(sorted(self.skipped[kind, path])), self.skipped_n[kind, path],
                      how_to_check(kind, self.remapped.get(path, Path(path))),
                      str(self.remapped[path]) if path in self.remapped else None)
            for kind, path in keys
        )

    def unused_remap(self) -> None:
        """:class:`ConfigError` for a ``--remap`` under whose RECORDED the run recorded nothing (a typo would
        otherwise leave every check it meant to enable unchecked, without saying why)."""
        for old, new in self.remap:
            if not any(p.is_relative_to(old) for p in self.outside):
                shown = ", ".join(sorted(map(str, self.outside))[:5]) or "none"
                raise ConfigError(f"--remap {old}={new}: the run recorded no path under {old}; the paths outside "
                                  f"the run it recorded include: {shown}")

    def check_inputs(self, inputs: list[tuple[str, dict[str, Any]]]) -> None:
        """Stage inputs (manifest name, input entry) still match the digests taken when each stage started
        (after all stages' own checks, so an edited file is first reported by its own stage, at its line)."""
        for mname, inp in inputs:
            p = Path(str(inp.get("path")))
            target = self.here(p if p.is_absolute() else self.root / p)
            if not target.exists():
                self.not_here("input", target, (mname,))
                continue
            self.counts["inputs"] += 1
            found = self.fresh(target)
            if found != inp.get("sha256"):
                self.broken(str(inp.get("path")), None, f"input sha256 recorded in {mname}", inp.get("sha256"), found)

    def check_model_files(self, model_files: dict[tuple[str, str], list[tuple[str, Any]]]) -> None:
        """Re-hash the base model files the stages recorded (``(model path, relative file) -> [(manifest name,
        recorded sha256)]``), where they are (see module docstring)."""
        for (base, rel), recorded in sorted(model_files.items()):
            root = self.here(Path(base))
            target = root if root.is_file() and root.name == rel else root / rel
            if not root.exists():
                self.not_here("model", root, (mname for mname, _ in recorded))
                continue
            if not target.is_file():
                for mname, sha in recorded:
                    self.broken(str(target), None, f"base model file recorded in {mname} exists", sha, "missing")
                continue
            found = hash_file(target, cache=not self.rehash_models)
            self.counts["model_files"] += 1
            for mname, sha in recorded:
                if sha != found:
                    self.broken(str(target), None, f"sha256 of the base model file recorded in {mname}", sha, found)

    def check_parents(self, records: dict[str, tuple[str, int, dict[str, Any]]], ids_by_artifact: dict[str, set[str]],
                      file_digest: dict[str, str], *, rehash: bool = True) -> None:
        """Every parent link of *records* (id -> (artifact, line, record)) resolves; *ids_by_artifact* and
        *file_digest* are the record ids and the sha256 on disk of each file of the run. ``rehash=False`` (a
        trace's cheap check) hashes nothing more: a link to a file outside *ids_by_artifact* (weights, an
        external artifact) is listed in :attr:`not_rehashed`, not checked."""
        for rid, (artifact, lineno, record) in records.items():
            parents = record["provenance"].get("parents")
            if not isinstance(parents, list):
                self.broken(artifact, lineno, "parents is a list", "list", type(parents).__name__)
                continue
            for i, parent in enumerate(parents):
                where = f"parent {i} of {rid}"
                if not isinstance(parent, dict) or not isinstance(parent.get("artifact"), str):
                    self.broken(artifact, lineno, f"{where} shape", "{artifact, sha256, record_id}", repr(parent))
                    continue
                name, want_sha, pid = parent["artifact"], parent.get("sha256"), parent.get("record_id")
                if want_sha is None and name.split("/", 1)[0] != artifact.split("/", 1)[0]:
                    self.broken(artifact, lineno, f"{where}: sha256 of {name} recorded in the link",
                                "the digest of a finished stage's or an external file", None)
                if not rehash and name not in ids_by_artifact and (Path(name).is_absolute() or (self.root / name).exists()):
                    self.not_rehashed.append(name)  # there, not re-hashed; a target gone is checked below
                    continue
                external = self.here(Path(name)) if Path(name).is_absolute() else Path(name)
                if external.is_absolute() and not external.exists():
                    self.not_here("parent", external, (artifact,))  # its digest cannot be checked here
                    continue
                self.counts["parents"] += 1
                if external.is_absolute():
                    if want_sha is not None and self.fresh(external) != want_sha:
                        self.broken(artifact, lineno, f"{where}: sha256 of {name}", want_sha, self.fresh(external))
                    continue
                if name in ids_by_artifact:
                    found_sha = file_digest.get(name)
                    if want_sha is not None and want_sha != found_sha:
                        self.broken(artifact, lineno, f"{where}: sha256 of {name}", want_sha, found_sha)
                    if pid is not None and pid not in ids_by_artifact[name]:
                        self.broken(artifact, lineno, f"{where}: record_id in {name}", pid, "no such record")
                    continue
                target = self.root / name
                if not target.exists():
                    self.broken(artifact, lineno, f"{where}: artifact exists", name, "missing")
                elif want_sha is not None and self.fresh(target) != want_sha:
                    self.broken(artifact, lineno, f"{where}: sha256 of {name}", want_sha, self.fresh(target))


__all__ = ["Links", "remap_pairs"]

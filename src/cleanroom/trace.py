"""Tracing a record of a run back to its roots (behind ``cleanroom trace``): each parent link followed to
the record or file it names, down to the base model's files the producing stage recorded."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cleanroom.broken import require_run
from cleanroom.errors import InputError
from cleanroom.jsonl import loads, scan_jsonl


@dataclass(frozen=True)
class TraceNode:
    """One node of a record's ancestry: a record of the run, an external artifact, or a missing link."""

    kind: str  # "record" | "artifact" | "external" | "missing"
    artifact: str
    record_id: str | None
    line: int | None
    sha256: str | None  # content_sha256 for records, file digest for artifacts
    model: dict[str, Any] | None
    parents: tuple[TraceNode, ...]

    def to_dict(self) -> dict[str, Any]:
        # one level at a time (not dataclasses.asdict), so ``parents`` is a list of dicts
        shallow = {f.name: getattr(self, f.name) for f in fields(self)}
        return shallow | {"parents": [p.to_dict() for p in self.parents]}


def _index(root: Path) -> tuple[dict[str, tuple[str, int, dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Every record of the finished stages by id, and each stage's model files; a malformed line or
    manifest is an :class:`InputError` naming the file and line (``cleanroom verify`` says more)."""
    records: dict[str, tuple[str, int, dict[str, Any]]] = {}
    models: dict[str, dict[str, Any]] = {}
    fix = f"run `cleanroom verify {root}` to find what changed"
    for sdir in sorted(d for d in root.iterdir() if d.is_dir() and (d / "manifest.json").is_file()):
        mpath = sdir / "manifest.json"
        try:
            manifest = loads(mpath.read_bytes())
            model = (manifest.get("provenance") or {}).get("model")
            record_files = list(manifest.get("records", {}))
            if not isinstance(manifest.get("records", {}), dict) or not all(isinstance(r, str) for r in record_files):
                raise TypeError("'records' is not an object keyed by record file")
        except (ValueError, AttributeError, TypeError) as exc:
            raise InputError(f"{mpath}: not a readable stage manifest ({exc}); {fix}") from None
        if isinstance(model, dict):
            if not isinstance(model.get("files") or {}, dict):
                raise InputError(f"{mpath}: provenance.model.files is not an object of file digests; {fix}")
            models[sdir.name] = {"resolved_path": model.get("resolved_path"), "files": model.get("files")}
        for rel in record_files:
            path = sdir / rel
            if not path.is_file():
                raise InputError(f"{path}: record file listed in {mpath} is missing; {fix}")
            for lineno, _, rec, error, _ in scan_jsonl(path):
                try:
                    if error is not None:  # the line is not JSON: reported below like any other defect
                        raise error
                    rid = rec["provenance"]["record_id"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(f"{path}:{lineno}: not a cleanroom record ({type(exc).__name__}: {exc}); "
                                     f"{fix}") from None
                if not isinstance(rid, str):
                    raise InputError(f"{path}:{lineno}: record_id {rid!r} is not a string; {fix}")
                records[rid] = (f"{sdir.name}/{rel}", lineno, rec)
    return records, models


def list_records(run_dir: str | os.PathLike[str]) -> list[tuple[str, str, int]]:
    """``(record_id, artifact, line)`` of every record of the run's finished stages, in file order."""
    root = Path(run_dir)
    require_run(root)
    records, _ = _index(root)
    return sorted(((rid, a, line) for rid, (a, line, _) in records.items()), key=lambda t: (t[1], t[2]))


def trace_record(run_dir: str | os.PathLike[str], record_id: str) -> TraceNode:
    """Walk *record_id* back through its parents to the roots (source records, external files, base model).

    Each record node carries the model files (path and digests) of the stage that produced it.
    :class:`InputError` when the id is not in the run or a record file is malformed.
    """
    root = Path(run_dir)
    require_run(root)
    records, models = _index(root)
    if record_id not in records:
        close = difflib.get_close_matches(record_id, list(records), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InputError(
            f"record {record_id!r} is not in run {root}{hint}; list its record ids with `cleanroom trace {root}`"
        )

    def walk(rid: str, seen: frozenset[str]) -> TraceNode:
        artifact, lineno, rec = records[rid]
        block = rec["provenance"]
        parents = []
        links = block.get("parents")
        for p in links if isinstance(links, list) else []:
            p = p if isinstance(p, dict) else {}
            pid, name, sha = p.get("record_id"), p.get("artifact"), p.get("sha256")
            if not isinstance(name, str) or not name:
                parents.append(TraceNode("missing", "(no artifact named)", pid, None, sha, None, ()))
            elif isinstance(pid, str) and pid in records and records[pid][0] == name and pid not in seen:
                parents.append(walk(pid, seen | {pid}))
            elif Path(name).is_absolute():
                parents.append(TraceNode("external", name, pid, None, sha, None, ()))
            elif (root / name).exists():
                parents.append(TraceNode("artifact", name, pid, None, sha, None, ()))
            else:
                parents.append(TraceNode("missing", name, pid, None, sha, None, ()))
        stage = artifact.split("/", 1)[0]
        return TraceNode("record", artifact, rid, lineno, block.get("content_sha256"), models.get(stage), tuple(parents))

    return walk(record_id, frozenset({record_id}))


def _short(sha: Any) -> str:
    """A digest as the text tree shows it: 16 hex, ``-`` when absent, and a recorded value that is no digest as
    what it is (trace shows the records as they are; ``cleanroom verify`` says what is wrong with them)."""
    if sha is None or sha == "":
        return "-"
    return sha[:16] if isinstance(sha, str) else f"{json.dumps(sha)[:24]} (not a digest)"


def format_trace(node: TraceNode, indent: int = 0) -> str:
    """Text rendering of a trace tree: one node a line, parents indented beneath their child."""
    pad = "  " * indent + ("<- " if indent else "")
    if node.kind == "record":
        head = f"{pad}{node.record_id}  [{node.artifact} line {node.line}]  content {_short(node.sha256)}"
    else:
        sha = _short(node.sha256)
        head = f"{pad}{node.kind}: {node.artifact}" + (f" record {node.record_id}" if node.record_id else "") + f"  sha256 {sha}"
    lines = [head]
    if node.model:
        files = node.model.get("files") or {}
        lines.append("  " * (indent + 1) + f"model {node.model.get('resolved_path')} ({len(files)} files)")
        for name, sha in sorted(files.items()):
            lines.append("  " * (indent + 2) + f"{name}  sha256 {_short(sha)}")
    for parent in node.parents:
        lines.append(format_trace(parent, indent + 1))
    return "\n".join(lines)


__all__ = ["TraceNode", "format_trace", "list_records", "trace_record"]

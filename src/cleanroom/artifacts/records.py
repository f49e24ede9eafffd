"""Record files: one canonical-JSON record a line, each carrying its provenance block and the chain value
through itself (the chain and the crash-safe writes are described in :mod:`cleanroom.artifacts`)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cleanroom.errors import InputError, ProvenanceError
from cleanroom.fs import atomic_write_bytes, check_output_path
from cleanroom.hashing import canonical_json, content_sha256, sha256_hex
from cleanroom.jsonl import read_jsonl, scan_jsonl_bytes
from cleanroom.redaction import find_secret

CHAIN_SEED = sha256_hex(b"cleanroom.chain/v1")
_BLOCK_KEYS = {"record_id", "content_sha256", "parents", "producer", "chain"}
_PARENT_KEYS = {"artifact", "sha256", "record_id"}


def chain_step(prev: str, record: Mapping[str, Any]) -> str:
    """``sha256(prev_hex || canonical_json(record without provenance.chain))`` (see module docstring)."""
    block = {k: v for k, v in record["provenance"].items() if k != "chain"}
    body = canonical_json({**record, "provenance": block})
    return sha256_hex(prev.encode("ascii") + body)


def _check_parents(
    parents: Iterable[Mapping[str, Any]], where: str, *, stage: str | None = None
) -> list[dict[str, Any]]:
    """Validate parent links; inside a stage, only a link to that stage's own (growing) files may omit
    its digest — a finished stage's file or an external file is linked with ``run.ref(...)``."""
    out = []
    for i, p in enumerate(parents):
        if not isinstance(p, Mapping) or set(p) != _PARENT_KEYS:
            got = sorted(p) if isinstance(p, Mapping) else type(p).__name__
            raise InputError(f"{where}: parent {i} has keys {got}; expected exactly {sorted(_PARENT_KEYS)}")
        if not isinstance(p["artifact"], str) or not p["artifact"]:
            raise InputError(f"{where}: parent {i} artifact must be '<stage>/<file>' or an absolute path")
        if p["sha256"] is not None and not re.fullmatch(r"[0-9a-f]{64}", str(p["sha256"])):
            raise InputError(f"{where}: parent {i} sha256 {p['sha256']!r} is not a hex SHA-256 or None")
        if p["record_id"] is not None and not isinstance(p["record_id"], str):
            raise InputError(f"{where}: parent {i} record_id must be a str or None")
        if stage is not None and p["sha256"] is None and p["artifact"].split("/", 1)[0] != stage:
            raise InputError(
                f"{where}: parent {i} links {p['artifact']} without its sha256; a link outside stage {stage} "
                "carries the file's digest — build it with run.ref(artifact, record_id)"
            )
        out.append(dict(p))
    return out


def _make_line(
    payload: Mapping[str, Any], *, record_id: str, parents: list[dict[str, Any]], producer: dict[str, Any], prev: str
) -> tuple[bytes, str]:
    block = {
        "record_id": record_id,
        "content_sha256": content_sha256(payload),
        "parents": parents,
        "producer": producer,
    }
    record = {**payload, "provenance": block}
    chain = chain_step(prev, record)
    block["chain"] = chain
    line = canonical_json(record) + b"\n"
    leaked = find_secret(line)
    if leaked is not None:
        raise ProvenanceError(
            f"record {record_id} contains the value of the secret environment variable {leaked}; "
            "remove it from the payload (secrets never enter artifacts)"
        )
    return line, chain


def _default_id(prefix: str, payload: Mapping[str, Any]) -> str:
    return f"{prefix}:{content_sha256(payload)[:16]}"


def _check_payload(payload: Any, where: str) -> None:
    if not isinstance(payload, Mapping):
        raise InputError(f"{where}: record is a {type(payload).__name__}; records are dicts")
    if "provenance" in payload:
        raise InputError(f"{where}: payload already has a 'provenance' key; the writer adds the block itself")


class RecordWriter:
    """Append-only, resumable JSONL writer for one record file of a stage (see module docstring)."""

    def __init__(self, path: Path, *, artifact: str, producer: dict[str, Any], id_prefix: str) -> None:
        self.path = path
        self.artifact = artifact
        self._producer = producer
        self._prefix = id_prefix
        self._ids: set[str] = set()
        self._prev = CHAIN_SEED
        self.count = 0
        self.truncated_bytes = 0
        check_output_path(path)  # a FIFO or device here would block the read below or take the records
        self._recover()
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _recover(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = list(scan_jsonl_bytes(data))
        if lines and not lines[-1].complete:
            torn = lines.pop()
            self.truncated_bytes = len(torn.raw)
            with open(self.path, "r+b") as fh:  # a torn last line from a crash: never a record
                fh.truncate(len(data) - len(torn.raw))
                fh.flush()
                os.fsync(fh.fileno())
        for lineno, _, record, error, _ in lines:
            try:
                if error is not None:  # the line is not JSON: reported below like any other defect
                    raise error
                block = record["provenance"]
                chain = chain_step(self._prev, record)
            except (ValueError, KeyError, TypeError) as exc:
                raise ProvenanceError(
                    f"{self.path} line {lineno} is not a cleanroom record ({exc}); "
                    "cannot resume onto it — move the file away or run `cleanroom verify`"
                ) from None
            if block.get("chain") != chain:
                raise ProvenanceError(
                    f"{self.path} line {lineno}: chain expected {chain}, found {block.get('chain')}; the file was "
                    "changed since it was written — cannot resume onto it"
                )
            self._prev = chain
            self._ids.add(block["record_id"])
            self.count += 1

    @property
    def chain_root(self) -> str:
        return self._prev

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._ids

    def write(
        self, payload: Mapping[str, Any], *, parents: Sequence[Mapping[str, Any]] = (), record_id: str | None = None
    ) -> str:
        """Append one record; return its id. An id already in the file is skipped (resume), not duplicated."""
        where = f"{self.artifact} record {self.count + 1}"
        _check_payload(payload, where)
        if self._fd is None:
            raise ProvenanceError(f"{self.artifact}: writer is closed (its stage has finished)")
        rid = record_id if record_id is not None else _default_id(self._prefix, payload)
        if not isinstance(rid, str) or not rid:
            raise InputError(f"{where}: record_id must be a non-empty str, got {rid!r}")
        if rid in self._ids:
            return rid
        parents = _check_parents(parents, where, stage=self.artifact.split("/", 1)[0])
        line, chain = _make_line(payload, record_id=rid, parents=parents, producer=self._producer, prev=self._prev)
        view = memoryview(line)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self._prev = chain
        self._ids.add(rid)
        self.count += 1
        return rid

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_records(
    path: str | os.PathLike[str],
    payloads: Iterable[Mapping[str, Any]],
    *,
    producer: Mapping[str, Any],
    parents_of: Callable[[Mapping[str, Any]], Sequence[Mapping[str, Any]]] = lambda payload: (),
    record_id_of: Callable[[Mapping[str, Any]], str] | None = None,
    write: Callable[[Path, bytes], None] = atomic_write_bytes,
) -> None:
    """Write a whole record file atomically (outside a stage), each record with its provenance block.

    Ids default to ``<file stem>:<first 16 hex of content_sha256>``; duplicate ids are an error. *write*
    puts the bytes on disk: :func:`~cleanroom.fs.atomic_write_bytes`, or an :class:`~cleanroom.fs.OutputGroup`'s
    ``write`` when the file is one of several outputs replaced together.
    """
    target = Path(path)
    if not isinstance(producer, Mapping):
        raise InputError(f"{target}: producer must be a dict (stage, run_id, config_sha256, provenance_sha256)")
    prev, lines, seen = CHAIN_SEED, [], set()
    for i, payload in enumerate(payloads):
        where = f"{target} record {i + 1}"
        _check_payload(payload, where)
        rid = record_id_of(payload) if record_id_of is not None else _default_id(target.stem, payload)
        if rid in seen:
            raise InputError(f"{where}: duplicate record_id {rid!r}; ids must be unique within a file")
        seen.add(rid)
        line, prev = _make_line(
            payload, record_id=rid, parents=_check_parents(parents_of(payload), where), producer=dict(producer),
            prev=prev,
        )
        lines.append(line)
    write(target, b"".join(lines))


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse a record file (:func:`cleanroom.jsonl.read_jsonl`; no digest checks). A record file may hold
    zero records: its manifest records the count."""
    return read_jsonl(path, what="record file", allow_empty=True)


__all__ = ["CHAIN_SEED", "RecordWriter", "chain_step", "read_records", "write_records"]

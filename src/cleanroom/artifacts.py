"""Run directories, crash-safe JSONL record files, stage manifests and the run attestation.

Layout::

    runs/<run_id>/run.json                 run id, config sha256, creation time
                 config.resolved.yaml      the resolved config (secrets redacted), written before any work
                 attestation.json          in-toto Statement v1 over every file (written by finalize)
                 <stage>/stage.json        provenance records of every attempt, the record files opened
                 <stage>/manifest.json     file digests, record-chain roots, input digests, provenance
                 <stage>/*.jsonl           records, each with a provenance block

Every record line is ``canonical_json(record) + "\\n"`` where ``record["provenance"]`` is::

    {record_id, content_sha256, parents: [{artifact, sha256, record_id}], producer: {stage, run_id,
     config_sha256, provenance_sha256}, chain}

``chain_i = sha256(chain_{i-1} || canonical_json(record_i without the "chain" key))`` with
``chain_0 = CHAIN_SEED``: each line carries the chain value *through itself*, so a changed byte, a
deleted or reordered line is caught at the first line whose stored chain disagrees — verification
names that line, not only "the file changed". The last value is the file's root in the manifest,
which catches a truncated tail.

Writes: whole files go through temp file + fsync + ``os.replace`` (+ fsync of the directory); a
record is one ``write`` of its whole line followed by fsync. A crash can therefore leave at most one
torn last line without its newline; reopening truncates it, and ids already present are skipped, so
a resumed stage neither loses nor duplicates a record.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cleanroom.errors import ConfigError, InputError, MissingFileError, ProvenanceError
from cleanroom.provenance import (
    ProvenanceRecord,
    canonical_json,
    content_sha256,
    digest_path,
    find_secret,
    hash_file,
    redact,
    sha256_hex,
)

CHAIN_SEED = sha256_hex(b"cleanroom.chain/v1")
RUN_SCHEMA = "cleanroom.run/v1"
MANIFEST_SCHEMA = "cleanroom.manifest/v1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://cleanroom.dev/attestation/run/v1"
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_BLOCK_KEYS = {"record_id", "content_sha256", "parents", "producer", "chain"}
_PARENT_KEYS = {"artifact", "sha256", "record_id"}


# --------------------------------------------------------------------------- atomic files


def pretty_json(obj: Any) -> bytes:
    """The human-readable form of manifests and attestations: sorted keys, indent 2, trailing newline.

    Deterministic, so verification can require the bytes to be exactly ``pretty_json(parsed)`` and
    catch even a whitespace edit.
    """
    canonical_json(obj)  # same value rules (no NaN, str keys)
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask. Read from /proc where it is exposed: setting it to read it back (the portable
    way) briefly changes it for every thread."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write *data* to *path* all-or-nothing: temp file in the same directory, fsync, ``os.replace``.

    ``mkstemp`` creates the temp file 0600; it gets ``0666 & ~umask`` before the rename, like a file
    written with ``open()``, so a collaborator on a shared box can read the run.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


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


# --------------------------------------------------------------------------- record files


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
        self._recover()
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _recover(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            self.truncated_bytes = len(data) - keep
            with open(self.path, "r+b") as fh:  # a torn last line from a crash: never a record
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
            data = data[:keep]
        for lineno, raw in enumerate(data.splitlines(), start=1):
            try:
                record = json.loads(raw)
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


# --------------------------------------------------------------------------- stages


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _stage_files(stage_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for f in sorted(stage_dir.rglob("*")):
        rel = f.relative_to(stage_dir).as_posix()
        if f.is_file() and rel != "manifest.json" and not (f.name.startswith(".") and f.name.endswith(".tmp")):
            out[rel] = {"sha256": hash_file(f, cache=False), "bytes": f.stat().st_size}
    return out


class StageWriter:
    """One stage of a run: record files, other outputs, and its manifest on a clean exit.

    Use as a context manager (``with run.stage(...) as st``). On an exception no manifest is written:
    the stage stays visibly unfinished and the next attempt resumes its record files.
    """

    def __init__(self, run: RunDir, name: str, provenance: ProvenanceRecord, inputs: Iterable[Any]) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name.startswith("."):
            raise InputError(f"stage name {name!r} must match [A-Za-z0-9_.-]+ (it names a directory)")
        if not isinstance(provenance, ProvenanceRecord):
            raise InputError(f"stage {name}: provenance must be a ProvenanceRecord from capture_provenance()")
        if provenance.stage != name:
            raise ProvenanceError(f"stage {name}: provenance was captured for stage {provenance.stage!r}")
        for key, want in (("run_id", run.run_id), ("config_sha256", run.config_sha256)):
            got = getattr(provenance, key)
            if got is not None and got != want:
                raise ProvenanceError(f"stage {name}: provenance {key} is {got}, this run's is {want}")
        self.run = run
        self.name = name
        self.dir = run.path / name
        self.provenance = provenance
        self._inputs = list(inputs)
        self._writers: dict[str, RecordWriter] = {}
        self._state: dict[str, Any] = {}
        self._open = False

    @property
    def producer(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "run_id": self.run.run_id,
            "config_sha256": self.run.config_sha256,
            "provenance_sha256": self.provenance.sha256,
        }

    def __enter__(self) -> StageWriter:
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = self.dir / "manifest.json"
        if manifest.exists():  # reopening a finished stage: it is unfinished until this attempt exits
            manifest.unlink()
            _fsync_dir(self.dir)
        state_path = self.dir / "stage.json"
        self._state = (
            json.loads(state_path.read_text()) if state_path.exists() else {"attempts": [], "record_files": []}
        )
        if self.provenance.sha256 not in {sha256_hex(canonical_json(a)) for a in self._state["attempts"]}:
            self._state["attempts"].append(self.provenance.to_dict())
        self._save_state()
        self._input_digests = [self.run._input_digest(p) for p in self._inputs]
        self._open = True
        return self

    def _save_state(self) -> None:
        atomic_write_bytes(self.dir / "stage.json", pretty_json(self._state))

    def _inside(self, name: str | os.PathLike[str]) -> Path:
        p = Path(name)
        target = (self.dir / p).resolve() if not p.is_absolute() else p.resolve()
        if self.dir.resolve() not in target.parents:
            raise InputError(f"stage {self.name}: {name} is outside the stage directory {self.dir}")
        return target

    def jsonl(self, name: str) -> RecordWriter:
        """The resumable record writer for ``<stage>/<name>`` (``name`` ends in ``.jsonl``)."""
        if not self._open:
            raise ProvenanceError(f"stage {self.name}: open record files inside `with run.stage(...)`")
        if not name.endswith(".jsonl") or Path(name).is_absolute() or ".." in Path(name).parts:
            raise InputError(f"stage {self.name}: record file {name!r} must be a relative path ending in .jsonl")
        if name not in self._writers:
            path = self._inside(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            stem = name[: -len(".jsonl")]
            self._writers[name] = RecordWriter(
                path, artifact=f"{self.name}/{name}", producer=self.producer, id_prefix=f"{self.name}/{stem}"
            )
            if name not in self._state["record_files"]:
                self._state["record_files"].append(name)
                self._save_state()
        return self._writers[name]

    def add_file(self, path: str | os.PathLike[str], *, name: str | None = None) -> Path:
        """Declare a non-record output (adapter, plot); a file or directory outside the stage is copied in
        (as ``<stage>/<name>``, default its own name). Every file in the stage directory is in the manifest."""
        src = Path(path)
        if not src.exists():
            raise MissingFileError(f"stage {self.name}: add_file({src}) — no such file or directory")
        try:
            return self._inside(src)
        except InputError:
            dest = self._inside(name if name is not None else src.name)
            if src.is_dir():
                shutil.copytree(src, dest, dirs_exist_ok=True)
            else:
                shutil.copy2(src, dest)
            return dest

    def ref(self, name: str, record_id: str | None) -> dict[str, Any]:
        """A parent reference to a record of this stage (its file is still growing, so ``sha256`` is None)."""
        return {"artifact": f"{self.name}/{name}", "sha256": None, "record_id": record_id}

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        for w in self._writers.values():
            w.close()
        self._open = False
        if exc_type is not None:
            return
        records = {}
        for name in self._state["record_files"]:
            w = self._writers.get(name) or RecordWriter(
                self.dir / name, artifact=f"{self.name}/{name}", producer=self.producer, id_prefix=""
            )
            w.close()
            records[name] = {"count": w.count, "chain_root": w.chain_root}
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "stage": self.name,
            "run_id": self.run.run_id,
            "config_sha256": self.run.config_sha256,
            "files": _stage_files(self.dir),
            "records": records,
            "inputs": self._input_digests,
            "provenance": self.provenance.to_dict(),
            "provenance_sha256": self.provenance.sha256,
            "attempts_sha256": [sha256_hex(canonical_json(a)) for a in self._state["attempts"]],
            "finished_at": _now(),
        }
        data = pretty_json(manifest)
        leaked = find_secret(data)
        if leaked is not None:
            raise ProvenanceError(f"stage {self.name}: manifest would contain the value of {leaked}; not written")
        atomic_write_bytes(self.dir / "manifest.json", data)


# --------------------------------------------------------------------------- runs


class RunDir:
    """A run directory (see module docstring). ``create`` writes the resolved config before any work."""

    def __init__(self, path: Path, run_id: str, config_sha256: str) -> None:
        self.path = path
        self.run_id = run_id
        self.config_sha256 = config_sha256

    @classmethod
    def create(cls, root: str | os.PathLike[str], run_id: str, config: Mapping[str, Any]) -> RunDir:
        """Create ``root/run_id`` with ``run.json`` and ``config.resolved.yaml``.

        An existing run with the same config digest is reopened (resume); a different config is an error.
        """
        import yaml

        if not isinstance(run_id, str) or not _NAME.fullmatch(run_id) or run_id.startswith("."):
            raise ConfigError(f"run_id {run_id!r} must match [A-Za-z0-9_.-]+ (it names a directory)")
        if not isinstance(config, Mapping):
            raise ConfigError(f"config must be a dict of resolved values, got {type(config).__name__}")
        clean = redact(dict(config))
        digest = sha256_hex(canonical_json(clean))
        path = Path(root) / run_id
        if (path / "run.json").exists():
            run = cls.open(path)
            if run.config_sha256 != digest:
                raise ConfigError(
                    f"run {path} exists with config sha256 {run.config_sha256}, this config is {digest}; "
                    "choose a new run_id or the same config to resume"
                )
            return run
        path.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(clean, sort_keys=True, allow_unicode=True, default_flow_style=False)
        if yaml.safe_load(text) != clean:
            raise ConfigError("config does not survive a YAML round trip; use plain str/int/float/bool/list/dict")
        atomic_write_bytes(path / "config.resolved.yaml", text.encode())
        import cleanroom

        meta = {
            "schema": RUN_SCHEMA,
            "run_id": run_id,
            "config_sha256": digest,
            "created_at": _now(),
            "cleanroom_version": cleanroom.__version__,
        }
        atomic_write_bytes(path / "run.json", pretty_json(meta))
        return cls(path, run_id, digest)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """Open an existing run; :class:`MissingFileError` (exit 2) when *path* is not a run directory."""
        p = Path(path)
        meta_path = p / "run.json"
        if not meta_path.is_file() or not (p / "config.resolved.yaml").is_file():
            raise MissingFileError(
                f"{p} is not a cleanroom run directory (run.json and config.resolved.yaml missing); "
                "pass runs/<run_id>"
            )
        try:
            meta = json.loads(meta_path.read_text())
            return cls(p, meta["run_id"], meta["config_sha256"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProvenanceError(f"{meta_path} is unreadable ({exc}); the run metadata was changed") from None

    @property
    def config(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load((self.path / "config.resolved.yaml").read_text())

    def stage(
        self, name: str, *, provenance: ProvenanceRecord, inputs: Iterable[str | os.PathLike[str]] = ()
    ) -> StageWriter:
        return StageWriter(self, name, provenance, inputs)

    def stages(self) -> list[str]:
        """Names of stage directories (those holding ``stage.json`` or ``manifest.json``), sorted."""
        return sorted(
            d.name
            for d in self.path.iterdir()
            if d.is_dir() and ((d / "stage.json").exists() or (d / "manifest.json").exists())
        )

    def _input_digest(self, p: str | os.PathLike[str]) -> dict[str, Any]:
        path = Path(p)
        if not path.is_absolute() and not path.exists():
            path = self.path / path
        if not path.exists():
            raise MissingFileError(f"stage input {p} does not exist; inputs are hashed when a stage starts")
        resolved = path.resolve()
        try:
            name = resolved.relative_to(self.path.resolve()).as_posix()
        except ValueError:
            name = str(resolved)
        return {"path": name, "sha256": digest_path(resolved)}

    def ref(self, artifact: str, record_id: str | None) -> dict[str, Any]:
        """A parent reference to ``<stage>/<file>`` (or an absolute path), with the file's digest now."""
        p = Path(artifact)
        target = p if p.is_absolute() else self.path / p
        if not target.exists():
            raise MissingFileError(f"parent artifact {artifact} does not exist in run {self.path}")
        return {"artifact": artifact, "sha256": digest_path(target), "record_id": record_id}

    def finalize(self) -> Path:
        """Write ``attestation.json`` (in-toto Statement v1); every stage must have finished."""
        statement = build_attestation(self.path)
        target = self.path / "attestation.json"
        atomic_write_bytes(target, pretty_json(statement))
        return target


def build_attestation(
    run_path: str | os.PathLike[str], *, digest: Callable[[Path], str] | None = None
) -> dict[str, Any]:
    """The in-toto Statement v1 for a run, a pure function of the files on disk.

    ``subject``: run.json, config.resolved.yaml, and every stage file including each manifest, with
    sha256 digests. ``predicate``: ``parameters`` (the resolved config), ``dependencies`` (base model
    files from the stages' provenance records, stage inputs outside the run — datasets, eval sets —
    and the code commit), ``stages`` (manifest and provenance digests). Being a function of disk, it
    can be rebuilt by verification and compared field by field. ``digest`` (default: the cached
    :func:`~cleanroom.provenance.digest_path`) lets verification supply its own uncached digests.
    """
    import yaml

    root = Path(run_path)
    run = RunDir.open(root)

    if digest is None:
        digest = digest_path
    subjects = [
        {"name": "config.resolved.yaml", "digest": {"sha256": digest(root / "config.resolved.yaml")}},
        {"name": "run.json", "digest": {"sha256": digest(root / "run.json")}},
    ]
    deps: dict[str, dict[str, Any]] = {}
    stages: dict[str, Any] = {}
    finished = []
    for name in run.stages():
        mpath = root / name / "manifest.json"
        if not mpath.exists():
            raise ProvenanceError(f"stage {name} of run {root} has no manifest.json (unfinished); finish or rerun it")
        manifest = json.loads(mpath.read_bytes())
        subjects.append({"name": f"{name}/manifest.json", "digest": {"sha256": digest(mpath)}})
        for rel in manifest["files"]:
            f = root / name / rel
            subjects.append({"name": f"{name}/{rel}", "digest": {"sha256": digest(f) if f.exists() else None}})
        prov = manifest["provenance"]
        stages[name] = {"manifest_sha256": digest(mpath), "provenance_sha256": manifest["provenance_sha256"]}
        finished.append(manifest["finished_at"])
        model = prov.get("model") or {}
        for rel, sha in sorted((model.get("files") or {}).items()):
            uri = f"{model.get('resolved_path')}/{rel}"
            deps[uri] = {"name": f"model/{rel}", "uri": uri, "digest": {"sha256": sha}}
        for inp in manifest["inputs"]:
            if Path(inp["path"]).is_absolute():
                deps[inp["path"]] = {"name": Path(inp["path"]).name, "uri": inp["path"], "digest": {"sha256": inp["sha256"]}}
        git = prov.get("git") or {}
        code = f"git:{git.get('commit')}"
        deps[code] = {
            "name": "cleanroom-code",
            "uri": code,
            "digest": {"gitCommit": git.get("commit")},
            "annotations": {"dirty": bool(git.get("dirty")), "cleanroom_version": prov.get("cleanroom_version")},
        }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run_id": run.run_id,
            "config_sha256": run.config_sha256,
            "parameters": yaml.safe_load((root / "config.resolved.yaml").read_text()),
            "dependencies": [deps[k] for k in sorted(deps)],
            "stages": stages,
            "finished_at": max(finished) if finished else None,
        },
    }


# --------------------------------------------------------------------------- standalone record files


def write_records(
    path: str | os.PathLike[str],
    payloads: Iterable[Mapping[str, Any]],
    *,
    producer: Mapping[str, Any],
    parents_of: Callable[[Mapping[str, Any]], Sequence[Mapping[str, Any]]] = lambda payload: (),
    record_id_of: Callable[[Mapping[str, Any]], str] | None = None,
) -> None:
    """Write a whole record file atomically (outside a stage), each record with its provenance block.

    Ids default to ``<file stem>:<first 16 hex of content_sha256>``; duplicate ids are an error.
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
    atomic_write_bytes(target, b"".join(lines))


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse a record file (:func:`cleanroom.jsonl.read_jsonl`; no digest checks). A record file may hold
    zero records: its manifest records the count."""
    from cleanroom.jsonl import read_jsonl

    return read_jsonl(path, what="record file", allow_empty=True)


def verify_run(run_dir: str | os.PathLike[str], *, rehash_models: bool = False) -> Any:
    """Re-check a run offline; see :func:`cleanroom.verify.verify_run`."""
    from cleanroom.verify import verify_run as _verify

    return _verify(run_dir, rehash_models=rehash_models)


def trace_record(run_dir: str | os.PathLike[str], record_id: str) -> Any:
    """Walk a record back to its roots; see :func:`cleanroom.verify.trace_record`."""
    from cleanroom.verify import trace_record as _trace

    return _trace(run_dir, record_id)


__all__ = [
    "CHAIN_SEED",
    "RecordWriter",
    "RunDir",
    "StageWriter",
    "atomic_write_bytes",
    "build_attestation",
    "chain_step",
    "pretty_json",
    "read_records",
    "trace_record",
    "verify_run",
    "write_records",
]

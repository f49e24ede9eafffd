"""The run directory and its stages: created with the resolved config before any work, each stage written
through a :class:`StageWriter` that leaves a manifest only on a clean finish."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cleanroom._version import __version__
from cleanroom.artifacts.attestation import build_attestation
from cleanroom.artifacts.layout import (
    MANIFEST_SCHEMA,
    RUN_SCHEMA,
    is_name,
    now,
    pretty_json,
    read_run_meta,
    stage_names,
)
from cleanroom.artifacts.records import RecordWriter
from cleanroom.errors import ConfigError, InputError, MissingFileError, ProvenanceError
from cleanroom.fs import atomic_write_bytes, fsync_dir, open_mode
from cleanroom.hashing import canonical_json, digest_path, hash_file, sha256_hex
from cleanroom.jsonl import loads
from cleanroom.provenance import ProvenanceRecord
from cleanroom.redaction import find_secret, redact
from cleanroom.yaml_reader import safe_load


def _stage_files(stage_dir: Path) -> dict[str, dict[str, Any]]:
    """Each file of a finishing stage (the manifest's ``files``) with its digest and size. Each also gets the
    mode a plain ``open()`` gives a new file under the umask: a library that saves its files 0600 (safetensors
    does, for adapter weights) would otherwise keep a collaborator on a shared box from verifying the run."""
    mode = open_mode()
    out = {}
    for f in sorted(stage_dir.rglob("*")):
        rel = f.relative_to(stage_dir).as_posix()
        if f.is_file() and rel != "manifest.json" and not (f.name.startswith(".") and f.name.endswith(".tmp")):
            if not f.is_symlink() and stat.S_IMODE(f.stat().st_mode) != mode:
                with contextlib.suppress(OSError):  # a convenience, not a check: a file another user owns keeps its mode
                    os.chmod(f, mode)
            out[rel] = {"sha256": hash_file(f, cache=False), "bytes": f.stat().st_size}
    return out


class StageWriter:
    """One stage of a run: record files, other outputs, and its manifest on a clean exit.

    Use as a context manager (``with run.stage(...) as st``). On an exception no manifest is written:
    the stage stays visibly unfinished and the next attempt resumes its record files.
    """

    def __init__(self, run: RunDir, name: str, provenance: ProvenanceRecord, inputs: Iterable[Any]) -> None:
        if not is_name(name):
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
            fsync_dir(self.dir)
        self._state = self._read_state(self.dir / "stage.json")
        if self.provenance.sha256 not in {sha256_hex(canonical_json(a)) for a in self._state["attempts"]}:
            self._state["attempts"].append(self.provenance.to_dict())
        self._save_state()
        self._input_digests = [self.run._input_digest(p) for p in self._inputs]
        self._open = True
        return self

    def _read_state(self, path: Path) -> dict[str, Any]:
        """The unfinished stage's ``stage.json`` (its attempts and record files), or a fresh one; a state that
        is not what this writer saved is a ProvenanceError, never a TypeError halfway through a resume."""
        if not path.exists():
            return {"attempts": [], "record_files": []}
        try:
            state = loads(path.read_bytes())
            ok = (isinstance(state, dict) and isinstance(state.get("attempts"), list)
                  and all(isinstance(a, dict) for a in state["attempts"])
                  and isinstance(state.get("record_files"), list)
                  and all(isinstance(r, str) for r in state["record_files"]))
            problem = "" if ok else "not {attempts: [objects], record_files: [names]}"
        except ValueError as exc:
            problem = str(exc)
        if problem:
            raise ProvenanceError(f"{path}: the state of unfinished stage {self.name} is unreadable ({problem}); "
                                  f"delete {self.dir} to run the stage again from its start")
        return state

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
            "finished_at": now(),
        }
        data = pretty_json(manifest)
        leaked = find_secret(data)
        if leaked is not None:
            raise ProvenanceError(f"stage {self.name}: manifest would contain the value of {leaked}; not written")
        atomic_write_bytes(self.dir / "manifest.json", data)


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
        if not is_name(run_id):
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
        if safe_load(text) != clean:
            raise ConfigError("config does not survive a YAML round trip; use plain str/int/float/bool/list/dict")
        atomic_write_bytes(path / "config.resolved.yaml", text.encode())
        meta = {
            "schema": RUN_SCHEMA,
            "run_id": run_id,
            "config_sha256": digest,
            "created_at": now(),
            "cleanroom_version": __version__,
        }
        atomic_write_bytes(path / "run.json", pretty_json(meta))
        return cls(path, run_id, digest)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """Open an existing run; :class:`MissingFileError` (exit 2) when *path* is not a run directory."""
        p = Path(path)
        return cls(p, *read_run_meta(p))

    @property
    def config(self) -> dict[str, Any]:
        return safe_load((self.path / "config.resolved.yaml").read_text())

    def stage(
        self, name: str, *, provenance: ProvenanceRecord, inputs: Iterable[str | os.PathLike[str]] = ()
    ) -> StageWriter:
        return StageWriter(self, name, provenance, inputs)

    def stages(self) -> list[str]:
        """Names of stage directories (those holding ``stage.json`` or ``manifest.json``), sorted."""
        return stage_names(self.path)

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


__all__ = ["RunDir", "StageWriter"]

"""The provenance record: which code, model files, settings and machine produced a stage's outputs.

A :class:`ProvenanceRecord` is captured once per stage and answers "which code, model files,
settings and machine produced this": cleanroom version, git commit and dirty flag, the loader's own
provenance dict, the model files' digests (:mod:`cleanroom.model_files`), quantization, generation
parameters, seeds, the config's digest, package versions, hardware and a timestamp. Secrets never
enter it: everything passes through :func:`cleanroom.redaction.redact`.

Canonical JSON and digests live in :mod:`cleanroom.hashing`, redaction in :mod:`cleanroom.redaction`;
their names are re-exported here, where callers have always found them.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cleanroom._version import __version__
from cleanroom.environment import git_state, hardware_info, package_versions
from cleanroom.errors import InputError, ProvenanceError
from cleanroom.hashing import canonical_json, content_sha256, digest_path, hash_file, hash_tree, sha256_hex
from cleanroom.model_files import MODEL_META_FILES, WEIGHT_SUFFIXES, model_file_digests
from cleanroom.redaction import REDACTED, find_secret, redact, secret_env_values

SCHEMA = "cleanroom.provenance/v1"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ProvenanceRecord:
    """Who/what/where produced a stage's outputs; captured once per stage (see module docstring).

    Frozen; ``to_dict()`` returns a deep copy, ``sha256`` is the digest of its canonical JSON and is
    what every record's ``producer.provenance_sha256`` points at.
    """

    stage: str
    run_id: str | None
    created_at: str
    cleanroom_version: str
    git: dict[str, Any]
    config_sha256: str | None
    model: dict[str, Any] | None
    loader: dict[str, Any] | None
    loader_version: str | None
    quantization: Any
    generation: dict[str, Any] | None
    seeds: dict[str, Any] | None
    packages: dict[str, Any]
    hardware: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """Every field, ``schema`` first; ``asdict`` deep-copies, so the caller may change the result."""
        return {"schema": self.schema, **asdict(self)}

    @property
    def sha256(self) -> str:
        return sha256_hex(canonical_json(self.to_dict()))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProvenanceRecord:
        """Rebuild a record read back from a manifest; unknown or missing keys are an error."""
        names = {
            "schema", "stage", "run_id", "created_at", "cleanroom_version", "git", "config_sha256", "model",
            "loader", "loader_version", "quantization", "generation", "seeds", "packages", "hardware", "extra",
        }  # fmt: skip
        if not isinstance(data, Mapping) or set(data) != names:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ProvenanceError(f"provenance record has keys {got}; expected exactly {sorted(names)}")
        return cls(**copy.deepcopy(dict(data)))


def _config_digest(config: Mapping[str, Any] | None) -> str | None:
    if config is None:
        return None
    return sha256_hex(canonical_json(redact(dict(config))))


def capture_provenance(
    stage: str,
    *,
    run_id: str | None = None,
    config: Mapping[str, Any] | None = None,
    model_path: str | os.PathLike[str] | None = None,
    loader: Mapping[str, Any] | None = None,
    generation: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ProvenanceRecord:
    """Capture the provenance of one stage (see module docstring); everything passes through :func:`redact`.

    The model files hashed are those at *model_path* or, when absent, at the loader's
    ``resolved_model_path``. ``config_sha256`` is ``sha256(canonical_json(config))`` — the same digest
    :class:`cleanroom.artifacts.RunDir` records for the resolved config.
    """
    if not isinstance(stage, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", stage):
        raise InputError(f"stage name {stage!r} must be a non-empty [A-Za-z0-9_.-] string (it names a directory)")
    loader_d = redact(dict(loader)) if loader is not None else None
    for name, value in (("loader", loader_d), ("generation", generation), ("seeds", seeds), ("extra", extra)):
        if value is not None and not isinstance(value, Mapping):
            raise InputError(f"capture_provenance({name}=...) must be a dict, got {type(value).__name__}")

    model: dict[str, Any] | None = None
    requested = str(model_path) if model_path is not None else (loader_d or {}).get("requested_model")
    resolved = model_path if model_path is not None else (loader_d or {}).get("resolved_model_path")
    if requested is not None or resolved is not None:
        files = model_file_digests(resolved) if resolved is not None else {}
        model = {
            "requested": redact(requested),
            "resolved_path": str(Path(resolved).resolve()) if resolved is not None else None,
            "revision": (loader_d or {}).get("revision"),
            "files": files,
        }
    quant = (loader_d or {}).get("quantization")
    record = ProvenanceRecord(
        stage=stage,
        run_id=run_id,
        created_at=_now(),
        cleanroom_version=__version__,
        git=git_state(),
        config_sha256=_config_digest(config),
        model=model,
        loader=loader_d,
        loader_version=(loader_d or {}).get("loader_version"),
        quantization=quant,
        generation=redact(dict(generation)) if generation is not None else None,
        seeds=dict(seeds) if seeds is not None else None,
        packages=package_versions(),
        hardware=hardware_info(),
        extra=redact(dict(extra)) if extra is not None else {},
    )
    canonical_json(record.to_dict())  # rejects non-JSON values now, not when a stage finishes
    return record


__all__ = [
    "MODEL_META_FILES",
    "REDACTED",
    "SCHEMA",
    "WEIGHT_SUFFIXES",
    "ProvenanceRecord",
    "secret_env_values",
    "canonical_json",
    "capture_provenance",
    "content_sha256",
    "digest_path",
    "find_secret",
    "hash_file",
    "hash_tree",
    "model_file_digests",
    "redact",
    "sha256_hex",
]

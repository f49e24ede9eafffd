"""The run directory's layout: its schema names, the names it accepts, how its JSON files are written,
and how ``run.json`` and the stage directories are read back (by the run, the attestation and verification)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

from cleanroom.errors import MissingFileError, ProvenanceError
from cleanroom.hashing import canonical_json
from cleanroom.jsonl import loads

RUN_SCHEMA = "cleanroom.run/v1"
MANIFEST_SCHEMA = "cleanroom.manifest/v1"
NAME = re.compile(r"[A-Za-z0-9_.\-]+")
#: Stage 1's stages in pipeline order (pipeline/stage1.py's STAGES, then the report; a test keeps them equal).
STAGE1_ORDER = ("preflight", "baseline", "sft_data", "sft", "merge", "pairs", "dpo", "eval", "report")


def is_name(value: object) -> bool:
    """Whether *value* may name a run, a stage or a record-id label: :data:`NAME`, not starting with a dot
    (it becomes a directory or a part of every record id)."""
    return isinstance(value, str) and bool(NAME.fullmatch(value)) and not value.startswith(".")


def pretty_json(obj: Any) -> bytes:
    """The human-readable form of manifests and attestations: sorted keys, indent 2, trailing newline.

    Deterministic, so verification can require the bytes to be exactly ``pretty_json(parsed)`` and
    catch even a whitespace edit.
    """
    canonical_json(obj)  # same value rules (no NaN, str keys)
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")




def read_run_meta(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(run_id, config_sha256)`` of the run at *path*; :class:`MissingFileError` (exit 2) when *path* is not
    a run directory, :class:`ProvenanceError` when its ``run.json`` was changed."""
    p = Path(path)
    meta_path = p / "run.json"
    if not meta_path.is_file() or not (p / "config.resolved.yaml").is_file():
        raise MissingFileError(
            f"{p} is not a cleanroom run directory (run.json and config.resolved.yaml missing); "
            "pass runs/<run_id>"
        )
    try:
        meta = loads(meta_path.read_bytes())
        run_id, config_sha = meta["run_id"], meta["config_sha256"]
        if not (isinstance(run_id, str) and isinstance(config_sha, str)):
            raise TypeError(f"run_id {run_id!r} and config_sha256 {config_sha!r} must be strings")
        return run_id, config_sha
    except (ValueError, KeyError, TypeError) as exc:
        raise ProvenanceError(f"{meta_path} is unreadable ({exc}); the run metadata was changed") from None


def first_unfinished_stage(root: Path) -> str:
    """The stage a killed run was inside (``stage.json`` without a manifest, which is written only on a clean
    finish), else the first stage of :data:`STAGE1_ORDER` without a manifest (``finalize`` when none lacks one)."""
    started = sorted(d.name for d in root.iterdir() if (d / "stage.json").is_file() and not (d / "manifest.json").exists())
    if started:
        return started[0]
    return next((s for s in STAGE1_ORDER if not (root / s / "manifest.json").is_file()), "finalize")


def unfinished_stage(run_dir: str | os.PathLike[str]) -> str | None:
    """None when the run finished, else the stage it has not done (:func:`first_unfinished_stage`): the one
    answer ``cleanroom verify`` and ``cleanroom trace`` give to "did this run finish?".

    A run finished when ``finalize`` wrote its attestation, or when its last stage (``report``) did: an
    attestation missing then is a broken edge, never an unfinished run, so deleting it cannot turn a check
    into "unfinished". A run without either has no attestation to check against yet."""
    root = Path(run_dir)
    if (root / "attestation.json").exists() or (root / "report" / "manifest.json").exists():
        return None
    return first_unfinished_stage(root)


def stage_names(path: str | os.PathLike[str]) -> list[str]:
    """Names of stage directories (those holding ``stage.json`` or ``manifest.json``), sorted."""
    return sorted(
        d.name
        for d in Path(path).iterdir()
        if d.is_dir() and ((d / "stage.json").exists() or (d / "manifest.json").exists())
    )


__all__ = ["MANIFEST_SCHEMA", "NAME", "RUN_SCHEMA", "STAGE1_ORDER", "first_unfinished_stage", "now", "pretty_json",
           "read_run_meta", "stage_names", "unfinished_stage"]

"""The run directory's layout: its schema names, the names it accepts, how its JSON files are written,
and how ``run.json`` and the stage directories are read back (by the run, the attestation and verification),
with the command that made a run and so its stage order, which says whether the run finished."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from cleanroom.errors import CleanroomError, MissingFileError, ProvenanceError
from cleanroom.hashing import canonical_json, sha256_hex
from cleanroom.jsonl import loads
from cleanroom.yaml_reader import safe_load

RUN_SCHEMA = "cleanroom.run/v1"
MANIFEST_SCHEMA = "cleanroom.manifest/v1"
NAME = re.compile(r"[A-Za-z0-9_.\-]+")
#: Stage 1's stages in pipeline order (pipeline/stage1.py's STAGES, then the report; a test keeps them equal).
STAGE1_ORDER = ("preflight", "baseline", "sft_data", "sft", "merge", "pairs", "dpo", "eval", "report")
#: The command that made a Stage 1 run. Its ``config.resolved.yaml`` (a RunSpec) records no ``command``.
STAGE1_COMMAND = "run stage1"
#: The command that made an eval run, as its ``config.resolved.yaml`` records it (``command``).
EVAL_RUN_COMMAND = "eval run"
#: Each kind of run's stages in order, by the command that made it (:func:`run_command`).
STAGE_ORDERS: dict[str, tuple[str, ...]] = {STAGE1_COMMAND: STAGE1_ORDER, EVAL_RUN_COMMAND: ("eval",)}


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


def read_resolved_config(run_dir: str | os.PathLike[str]) -> tuple[Any, str]:
    """The run's parsed ``config.resolved.yaml`` and the sha256 of its canonical JSON (what ``run.json``'s
    ``config_sha256`` records); raises what reading or parsing it raises (OSError, UnicodeDecodeError,
    yaml.YAMLError, InputError)."""
    config = safe_load((Path(run_dir) / "config.resolved.yaml").read_text())
    return config, sha256_hex(canonical_json(config))


def run_command(run_dir: str | os.PathLike[str]) -> str | None:
    """The command that made the run at *run_dir* (a key of :data:`STAGE_ORDERS`), as its
    ``config.resolved.yaml`` records it: ``command``, which a Stage 1 config leaves out (:data:`STAGE1_COMMAND`).

    None when that record cannot be trusted: ``run.json`` or the config unreadable, the config not the one
    ``run.json``'s ``config_sha256`` names (verification reports that edge), or a command no kind of run records."""
    root = Path(run_dir)
    try:
        config_sha = read_run_meta(root)[1]
        config, found = read_resolved_config(root)
        if found != config_sha or not isinstance(config, dict):
            return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, CleanroomError):
        return None
    command = config.get("command", STAGE1_COMMAND)
    return command if isinstance(command, str) and command in STAGE_ORDERS else None


def _unfinished_in(root: Path, order: tuple[str, ...]) -> str:
    """The stage a killed run was inside (``stage.json`` without a manifest, which is written only on a clean
    finish), else the first stage of *order* without a manifest (the caller found its last stage without one)."""
    started = sorted(d.name for d in root.iterdir() if (d / "stage.json").is_file() and not (d / "manifest.json").exists())
    if started:
        return started[0]
    return next(s for s in order if not (root / s / "manifest.json").exists())


def unfinished_stage(run_dir: str | os.PathLike[str]) -> str | None:
    """None when the run finished, else the stage it has not done: the one answer ``cleanroom verify`` and
    ``cleanroom trace`` give to "did this run finish?".

    The stage order is the run's own (:data:`STAGE_ORDERS` by :func:`run_command`). A run finished when its
    attestation was written, or when the last stage of its order did (``report``; an eval run's ``eval``): an
    attestation missing then is a broken edge, never an unfinished run, so deleting it cannot turn a check into
    "unfinished". A run whose command cannot be read is taken as finished for the same reason (fail closed). A
    run without either has no attestation to check against yet."""
    root = Path(run_dir)
    if (root / "attestation.json").exists():
        return None
    order = STAGE_ORDERS.get(run_command(root) or "")
    if order is None or (root / order[-1] / "manifest.json").exists():
        return None
    return _unfinished_in(root, order)


def stage_names(path: str | os.PathLike[str]) -> list[str]:
    """Names of stage directories (those holding ``stage.json`` or ``manifest.json``), sorted."""
    return sorted(
        d.name
        for d in Path(path).iterdir()
        if d.is_dir() and ((d / "stage.json").exists() or (d / "manifest.json").exists())
    )


__all__ = ["EVAL_RUN_COMMAND", "MANIFEST_SCHEMA", "NAME", "RUN_SCHEMA", "STAGE1_COMMAND", "STAGE1_ORDER", "STAGE_ORDERS",
           "now", "pretty_json", "read_resolved_config", "read_run_meta", "run_command", "stage_names",
           "unfinished_stage"]

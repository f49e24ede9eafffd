"""The run's in-toto attestation: a Statement v1 over every file of the run, a pure function of the disk."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cleanroom.artifacts.layout import read_run_meta, stage_names
from cleanroom.errors import ProvenanceError
from cleanroom.hashing import digest_path
from cleanroom.yaml_reader import safe_load

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://cleanroom.dev/attestation/run/v1"


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
    root = Path(run_path)
    run_id, config_sha256 = read_run_meta(root)

    if digest is None:
        digest = digest_path
    subjects = [
        {"name": "config.resolved.yaml", "digest": {"sha256": digest(root / "config.resolved.yaml")}},
        {"name": "run.json", "digest": {"sha256": digest(root / "run.json")}},
    ]
    deps: dict[str, dict[str, Any]] = {}
    stages: dict[str, Any] = {}
    finished = []
    for name in stage_names(root):
        mpath = root / name / "manifest.json"
        if not mpath.exists():
            raise ProvenanceError(f"stage {name} of run {root} has no manifest.json (unfinished); finish or rerun it")
        manifest = json.loads(mpath.read_bytes())
        subjects.append({"name": f"{name}/manifest.json", "digest": {"sha256": digest(mpath)}})
        for rel in manifest["files"]:
            f = root / name / rel
            subjects.append({"name": f"{name}/{rel}", "digest": {"sha256": digest(f) if f.exists() else None}})
        stages[name] = {"manifest_sha256": digest(mpath), "provenance_sha256": manifest["provenance_sha256"]}
        finished.append(manifest["finished_at"])
        deps.update(_dependencies(manifest))
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run_id": run_id,
            "config_sha256": config_sha256,
            "parameters": safe_load((root / "config.resolved.yaml").read_text()),
            "dependencies": [deps[k] for k in sorted(deps)],
            "stages": stages,
            "finished_at": max(finished) if finished else None,
        },
    }


def _dependencies(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{uri: dependency}`` of one stage: the base model files its provenance recorded, its inputs outside
    the run, and the code commit."""
    prov = manifest["provenance"]
    deps: dict[str, dict[str, Any]] = {}
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
        # dirty None: git could not say (never reported as clean)
        "annotations": {"dirty": git.get("dirty"), "cleanroom_version": prov.get("cleanroom_version")},
    }
    return deps


__all__ = ["PREDICATE_TYPE", "STATEMENT_TYPE", "build_attestation"]

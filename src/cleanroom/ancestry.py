"""A record's ancestry checked against its digests (behind ``cleanroom trace``): what a trace read is checked
with :mod:`cleanroom.verify`'s own checks, so an ancestry read from edited records is shown as unverified,
never as sound.

The check is cheap: it hashes only what the trace read. When the run finished (or its report stage did), the
attestation and run.json first, as ``cleanroom verify`` does; a run that has not finished (the same test,
:func:`~cleanroom.artifacts.layout.unfinished_stage`) has no attestation to check, so its trace is checked
without one and reported ``unfinished``, never as verified; then, for each stage the trace read a record
from, the manifest (against its attestation subject, and its own form), every line of each record file the
trace opened (canonical bytes, ``content_sha256``, chain, producer) and that file's digest against the
manifest; then each parent link of the traced records whose target is one of those files (the link's
digest, the record id in it). A link into the run that resolves to no record (the record gone, its stage's
manifest cut) has its stage's manifest checked, and the record file it names when the manifest lists one.
Links to any other file (weights, artifacts outside the run) and the base model's files are not re-hashed:
they are listed as such (``not_rehashed``), and ``cleanroom verify`` checks them. The first broken edge is the one ``cleanroom verify`` would name first among these checks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cleanroom.artifacts.layout import unfinished_stage
from cleanroom.broken import VerifyReport
from cleanroom.trace import TraceNode, trace_record
from cleanroom.verify import Verifier


@dataclass(frozen=True)
class CheckedTrace:
    """A trace and what checking it found: ``report.errors`` empty means every record and record file it read
    matches its digests; ``report.unfinished`` names the stage a run that has not finished is at (its ancestry
    is then not verified, whatever the records read); ``not_rehashed`` names the parent links whose targets were
    not re-hashed."""

    node: TraceNode
    report: VerifyReport
    not_rehashed: tuple[str, ...]

    @property
    def verified(self) -> bool:
        """Only a report with every check passed on a finished run: broken and unfinished are not verified."""
        return self.report.ok

    @property
    def shows_model_files(self) -> bool:
        """Whether the tree shows base model file digests (as recorded: trace does not re-hash them)."""
        return any(n.model and n.model.get("files") for n in _nodes(self.node))


def _nodes(node: TraceNode) -> Iterator[TraceNode]:
    yield node
    for parent in node.parents:
        yield from _nodes(parent)


def _link_target(root: Path, artifact: str, manifests: dict[str, object]) -> tuple[str, set[str]] | None:
    """For a parent link that did not resolve to a record: the run stage its path lies in and the files of it to
    check. A record file its manifest lists is checked whole; for any other path in a stage (weights, a file the
    manifest does not list) the stage's manifest alone is checked (against its attestation subject), so a
    rewritten or deleted manifest is caught without re-hashing weights. None for a path outside the run's stages.
    *manifests* holds each stage's parsed ``records`` for this trace (None: no readable manifest)."""
    if Path(artifact).is_absolute() or "/" not in artifact:
        return None
    stage, rel = artifact.split("/", 1)
    if stage.startswith(".") or not (root / stage).is_dir():
        return None
    if stage not in manifests:
        try:
            manifests[stage] = json.loads((root / stage / "manifest.json").read_bytes()).get("records")
        except (OSError, ValueError, AttributeError):
            manifests[stage] = None
    records = manifests[stage]
    if records is None:
        return stage, {rel}  # no readable manifest: the stage check reports it first
    return stage, ({rel} if not isinstance(records, dict) or rel in records else set())


def trace_checked(run_dir: str | os.PathLike[str], record_id: str) -> CheckedTrace:
    """:func:`~cleanroom.trace.trace_record`, with the records and files it read checked (module docstring)."""
    root = Path(run_dir)
    node = trace_record(root, record_id)
    files: dict[str, set[str]] = {}
    manifests: dict[str, object] = {}
    ids: set[str] = set()
    for n in _nodes(node):
        if n.kind == "record" and n.record_id is not None:
            stage, rel = n.artifact.split("/", 1)
            files.setdefault(stage, set()).add(rel)
            ids.add(n.record_id)
        elif n.kind in ("artifact", "missing") and (target := _link_target(root, n.artifact, manifests)) is not None:
            # a link into the run that did not resolve to a record (the record or its file gone or edited, or a
            # non-record file): its stage's manifest is checked, and a record file of it whole, so check_parents
            # finds such a link broken
            files.setdefault(target[0], set()).update(target[1])
    v = Verifier(root)
    stopped = unfinished_stage(root)  # verify_run's question, so trace and verify call the same run unfinished
    if stopped is None:
        v.check_attestation()  # a finished run without one is a broken edge, as in verify_run
        v.check_run_files()
    else:  # a run still going: no attestation yet; what trace read is checked, and the report says unfinished
        v.attested = False
        v.read_run_meta()
    for stage in sorted(files):
        v.check_stage(stage, only=files[stage])
    walked = {rid: v.records[rid] for rid in sorted(ids) if rid in v.records}
    v.links.check_parents(walked, v.ids_by_artifact, v.file_digest, rehash=False)
    report = VerifyReport(str(root), tuple(v.errors), v.counts, v.links.unchecked(), unfinished=stopped)
    return CheckedTrace(node, report, tuple(dict.fromkeys(v.links.not_rehashed)))


__all__ = ["CheckedTrace", "trace_checked"]

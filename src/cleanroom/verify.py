"""Offline verification of a run directory (behind ``cleanroom verify``); tracing (``cleanroom trace``) is
:mod:`cleanroom.trace`, re-exported here, and the report types are :mod:`cleanroom.broken`.

Verification trusts nothing in memory: every file of the run is re-read and re-hashed (no hash
cache; the base model's files, outside the run, are the one exception, which :mod:`cleanroom.verify_links`
explains). The checks follow the edges of the run's hash graph, in an order chosen so the *first* error
reported is the edge closest to a change:

1. ``attestation.json`` parses and is byte-exactly its own pretty form;
2. ``run.json`` and ``config.resolved.yaml`` (format, config digest);
3. per stage: the manifest's digest against the attestation subject, the manifest's own form, then
   every record line (JSON, canonical bytes, ``content_sha256``, chain value, producer), then each
   file's digest against the manifest, record counts and chain roots;
3b. every stage's inputs against the digests taken when it started (after all stages, so an edited
   file is first reported by its own stage, at its line);
3c. the base model files each stage's provenance recorded (``provenance.model.files``), re-hashed at
   their recorded path;
4. the attestation rebuilt from disk, compared field by field (dependencies, parameters, subjects);
5. record ids unique across the run, and every parent resolves: the named artifact exists, its
   digest matches the one recorded in the parent link, and the record id is in it. Only a link to a
   file of the record's own stage may omit the digest (that file was still growing); a link into
   another stage or outside the run without one is broken.

Each failure is a :class:`Broken` naming the file, line, check, expected and found values. Checks 3b, 3c
and 5 reach what the stages read, outside the run too: :mod:`cleanroom.verify_links`, with the ``--remap``
lookup they share and the :class:`Unchecked` entries (a ``partial`` report) for what is not on this machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cleanroom.artifacts.attestation import build_attestation
from cleanroom.artifacts.layout import pretty_json, read_resolved_config, stage_names, unfinished_stage
from cleanroom.artifacts.records import _BLOCK_KEYS, CHAIN_SEED, chain_step
from cleanroom.broken import (
    Broken,
    Unchecked,
    VerifyReport,
    excerpt,
    first_diff,
    first_diff_line,
    require_run,
)
from cleanroom.errors import InputError, one_line
from cleanroom.jsonl import JsonLine, loads, scan_jsonl
from cleanroom.provenance import canonical_json, content_sha256, digest_path, sha256_hex
from cleanroom.trace import TraceNode, format_trace, list_records, trace_record
from cleanroom.verify_links import Links, remap_pairs


class Verifier:
    """One verification: broken edges, counts, and what each check collects for the later ones; :func:`verify_run`
    runs every check, :mod:`cleanroom.ancestry` those for the records a trace read."""

    def __init__(self, root: Path, *, rehash_models: bool = False,
                 remap: tuple[tuple[Path, Path], ...] = ()) -> None:
        self.root = root
        self.errors: list[Broken] = []
        self.counts = {"stages": 0, "files": 0, "records": 0, "parents": 0, "parents_unchecked": 0, "inputs": 0,
                       "inputs_unchecked": 0, "model_files": 0, "model_files_unchecked": 0}
        # (model path, relative file) -> [(manifest name, recorded sha256)]
        self.model_files: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        self.subjects: dict[str, Any] = {}
        self.records: dict[str, tuple[str, int, dict[str, Any]]] = {}  # id -> (artifact, line, record)
        self.ids_by_artifact: dict[str, set[str]] = {}
        self.file_digest: dict[str, str] = {}  # "<stage>/<rel>" -> sha256 on disk
        self.run_id: str | None = None
        self.config_sha: str | None = None
        self.inputs: list[tuple[str, dict[str, Any]]] = []
        self._digests: dict[Path, str] = {}
        self.attested = True  # False while a run is still going: no attestation.json to hold subjects yet
        self.links = Links(root, fresh=self.fresh, broken=self.broken, counts=self.counts,
                           rehash_models=rehash_models, remap=remap)

    def fresh(self, path: Path) -> str:
        """Digest of a file or directory read from disk now (memoised for this one verification only)."""
        if path not in self._digests:
            self._digests[path] = digest_path(path, cache=False)
        return self._digests[path]

    def broken(self, file: str, line: int | None, check: str, expected: Any, found: Any) -> None:
        self.errors.append(Broken(file, line, check, expected, found))

    def load_json(self, path: Path, name: str, *, exact: bool = True) -> Any:
        """Parse a pretty JSON file and require its exact pretty bytes; None (and an error) otherwise."""
        data = path.read_bytes()
        try:
            obj = loads(data)
            want = pretty_json(obj)
        except ValueError as exc:
            line = getattr(exc, "lineno", None)
            self.broken(name, line, "valid JSON", "parseable JSON", f"{type(exc).__name__}: {exc}")
            return None
        except InputError as exc:
            self.broken(name, None, "JSON values", "finite JSON values", str(exc))
            return None
        if exact and data != want:
            line = first_diff_line(data, want)
            self.broken(name, line, "canonical pretty form", "sorted keys, indent 2", "other bytes")
            return None
        return obj

    # ------------------------------------------------------------------ checks

    def check_attestation(self) -> dict[str, Any] | None:
        path = self.root / "attestation.json"
        if not path.is_file():
            self.broken("attestation.json", None, "exists", "attestation.json (run.finalize())", "missing")
            return None
        att = self.load_json(path, "attestation.json")
        if not isinstance(att, dict) or not isinstance(att.get("subject"), list):
            if att is not None:
                self.broken("attestation.json", None, "statement shape", "in-toto Statement v1", "other JSON")
            return None
        for s in att["subject"]:
            if isinstance(s, dict) and isinstance(s.get("digest"), dict):
                self.subjects[str(s.get("name"))] = s["digest"].get("sha256")
        return att

    def check_subject(self, name: str, path: Path) -> None:
        if not self.attested:
            return
        found = self.fresh(path)
        want = self.subjects.get(name)
        if want != found:
            self.broken(name, None, "sha256 recorded for it in attestation.json", want, found)

    def read_run_meta(self) -> None:
        """``run_id`` and ``config_sha256`` from run.json, which every record's producer must name."""
        meta = self.load_json(self.root / "run.json", "run.json")
        if isinstance(meta, dict):
            self.run_id, self.config_sha = meta.get("run_id"), meta.get("config_sha256")

    def check_run_files(self) -> None:
        self.read_run_meta()
        self.check_subject("run.json", self.root / "run.json")
        self.check_subject("config.resolved.yaml", self.root / "config.resolved.yaml")
        try:
            found = read_resolved_config(self.root)[1]
        except (yaml.YAMLError, InputError, UnicodeDecodeError) as exc:
            self.broken("config.resolved.yaml", None, "valid YAML", "the resolved config", one_line(exc)[:200])
            return
        if found != self.config_sha:
            self.broken("config.resolved.yaml", None, "config sha256 recorded in run.json", self.config_sha, found)

    def stage_names(self) -> list[str]:
        return stage_names(self.root)

    def check_stages(self, att: dict[str, Any] | None) -> None:
        """Check 3 for every stage on disk, and a stage the attestation lists that is not named as missing (before
        check 4 reports the attestation fields its deletion changes: ``finished_at``, subjects)."""
        on_disk = self.stage_names()
        listed = (att.get("predicate") or {}).get("stages") if isinstance(att, dict) else None
        for stage in sorted(set(on_disk) | (set(listed) if isinstance(listed, dict) else set())):
            if stage in on_disk:
                self.check_stage(stage)
            else:
                found = "no manifest.json" if (self.root / stage).is_dir() else "directory missing"
                self.broken(f"{stage}/", None, "stage listed in attestation.json exists", "a finished stage", found)

    def check_stage(self, stage: str, only: set[str] | None = None) -> None:
        """Check 3 for one stage; *only* (paths in the stage) restricts the record and file checks to those."""
        sdir = self.root / stage
        mname = f"{stage}/manifest.json"
        if not (sdir / "manifest.json").is_file():
            self.broken(mname, None, "exists", "a finished stage's manifest", "missing (stage unfinished?)")
            return
        self.counts["stages"] += 1
        self.check_subject(mname, sdir / "manifest.json")
        manifest = self.load_json(sdir / "manifest.json", mname)
        if not isinstance(manifest, dict):
            return
        try:
            files, records = manifest["files"], manifest["records"]
            prov_sha = sha256_hex(canonical_json(manifest["provenance"]))
            attempts = set(manifest["attempts_sha256"])
        except (KeyError, TypeError, InputError) as exc:
            self.broken(mname, None, "manifest fields", "files, records, provenance, attempts_sha256", repr(exc))
            return
        if (problem := _manifest_shape_problem(manifest)) is not None:
            self.broken(mname, None, "manifest field types", "what RunDir writes", problem)
            return
        for key, want in (("stage", stage), ("run_id", self.run_id), ("config_sha256", self.config_sha)):
            if manifest.get(key) != want:
                self.broken(mname, None, f"manifest {key}", want, manifest.get(key))
        if manifest.get("provenance_sha256") != prov_sha:
            self.broken(mname, None, "provenance_sha256 of its provenance record", prov_sha, manifest.get("provenance_sha256"))
        if prov_sha not in attempts:
            self.broken(mname, None, "provenance record among attempts_sha256", prov_sha, sorted(attempts))
        producer = {"stage": stage, "run_id": self.run_id, "config_sha256": self.config_sha}
        for rel in records:
            if only is None or rel in only:
                self.check_record_file(stage, rel, producer, attempts, records[rel])
        self.check_files(stage, files, only)
        self.inputs.extend((mname, inp) for inp in manifest.get("inputs", []) if isinstance(inp, dict))
        model = manifest["provenance"].get("model") if isinstance(manifest["provenance"], dict) else None
        if isinstance(model, dict) and isinstance(model.get("files"), dict):
            for rel, sha in model["files"].items():
                self.model_files.setdefault((str(model.get("resolved_path")), rel), []).append((mname, sha))

    def check_files(self, stage: str, files: dict[str, Any], only: set[str] | None = None) -> None:
        """Each file of the stage (or of *only*) against its manifest's digest; with *only* None, extra files too."""
        sdir, mname = self.root / stage, f"{stage}/manifest.json"
        if only is None:
            on_disk = {f.relative_to(sdir).as_posix() for f in sdir.rglob("*") if f.is_file()} - {"manifest.json"}
            on_disk = {r for r in on_disk if not (Path(r).name.startswith(".") and r.endswith(".tmp"))}
        else:
            on_disk = {r for r in only if (sdir / r).is_file()}
        names = set(files) | on_disk
        for rel in sorted(names if only is None else names & only):
            name = f"{stage}/{rel}"
            if rel not in on_disk:
                self.broken(name, None, "file listed in manifest exists", files[rel].get("sha256"), "missing")
                continue
            found = self.fresh(sdir / rel)
            self.file_digest[name] = found
            self.counts["files"] += 1
            if rel not in files:
                self.broken(name, None, f"file listed in {mname}", "not present", f"extra file sha256 {found}")
            elif files[rel].get("sha256") != found:
                self.broken(name, None, f"sha256 recorded in {mname}", files[rel].get("sha256"), found)

    def check_record_file(
        self, stage: str, rel: str, producer: dict[str, Any], attempts: set[str], summary: dict[str, Any]
    ) -> None:
        artifact = f"{stage}/{rel}"
        path = self.root / stage / rel
        if not path.is_file():
            self.broken(artifact, None, "record file exists", "present", "missing")
            return
        lines = list(scan_jsonl(path))
        if lines and not lines[-1].complete:
            self.broken(artifact, len(lines), "complete last line", "a line ending in newline", "a torn line")
        self.ids_by_artifact.setdefault(artifact, set())
        prev = CHAIN_SEED
        for line in lines:
            self.counts["records"] += 1
            prev = self.check_record_line(artifact, line, prev, producer, attempts)
        if summary.get("count") != len(lines):
            self.broken(artifact, None, "record count in manifest", summary.get("count"), len(lines))
        if summary.get("chain_root") != prev:
            self.broken(artifact, None, "chain root in manifest", summary.get("chain_root"), prev)

    def check_record_line(self, artifact: str, line: JsonLine, prev: str, producer: dict[str, Any],
                          attempts: set[str]) -> str:
        """One record line's checks (JSON, block keys, canonical bytes, digests, chain, producer, id); returns
        the chain value the next line continues from."""
        lineno, raw, record = line.number, line.raw, line.value
        if line.error is not None:
            self.broken(artifact, lineno, "valid JSON", "a JSON record", f"{line.error} in {excerpt(raw)}")
            return prev
        block = record.get("provenance") if isinstance(record, dict) else None
        if not isinstance(block, dict) or set(block) != _BLOCK_KEYS:
            got = sorted(block) if isinstance(block, dict) else type(block).__name__
            self.broken(artifact, lineno, "provenance block keys", sorted(_BLOCK_KEYS), got)
            return prev
        try:
            canon = canonical_json(record)
            csum = content_sha256(record)
            chain = chain_step(prev, record)
        except (InputError, TypeError) as exc:
            self.broken(artifact, lineno, "JSON values", "finite JSON values", str(exc))
            return prev
        if raw != canon:
            self.broken(artifact, lineno, "canonical JSON bytes", excerpt(canon), excerpt(raw))
        if block["content_sha256"] != csum:
            self.broken(artifact, lineno, "content_sha256", csum, block["content_sha256"])
        if block["chain"] != chain:
            self.broken(artifact, lineno, "chain (sha256 of previous chain || this record)", chain, block["chain"])
        prev = block["chain"] if isinstance(block["chain"], str) else chain
        prod = block["producer"] if isinstance(block["producer"], dict) else {}
        for key, want in producer.items():
            if prod.get(key) != want:
                self.broken(artifact, lineno, f"producer.{key}", want, prod.get(key))
        if prod.get("provenance_sha256") not in attempts:
            self.broken(
                artifact, lineno, "producer.provenance_sha256 among the manifest's attempts",
                sorted(attempts), prod.get("provenance_sha256"),
            )  # fmt: skip
        rid = block["record_id"]
        if not isinstance(rid, str):
            self.broken(artifact, lineno, "record_id is a string", "str", repr(rid))
            return prev
        if rid in self.records:
            other = self.records[rid]
            self.broken(artifact, lineno, "record_id unique in the run", f"first at {other[0]} line {other[1]}", rid)
            return prev
        self.records[rid] = (artifact, lineno, record)
        self.ids_by_artifact[artifact].add(rid)
        return prev

    def check_rebuilt_attestation(self, att: dict[str, Any]) -> None:
        try:
            rebuilt = build_attestation(self.root, digest=self.fresh)
        except Exception as exc:  # an earlier broken edge made the run unreadable; already reported
            self.broken("attestation.json", None, "rebuild from disk", "a readable run", f"{type(exc).__name__}: {exc}")
            return
        diff = first_diff(rebuilt, att)
        if diff is not None:
            path, want, got = diff
            self.broken("attestation.json", None, f"field {path.lstrip('.')} rebuilt from the run", want, got)

def _manifest_shape_problem(manifest: dict[str, Any]) -> str | None:
    """What in a parsed manifest is not what a stage writes (``files`` and ``records``: objects keyed by a
    relative path inside the stage, each an object; ``inputs``: a list of objects), or None. A manifest not
    covered by the attestation (it is missing or was rewritten with it) still fails as broken, never as a crash."""
    for field in ("files", "records"):
        entries = manifest[field]
        if not isinstance(entries, dict):
            return f"{field} is {type(entries).__name__}, not an object"
        for rel, entry in entries.items():
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                return f"{field} names {rel!r}, outside the stage directory"
            if not isinstance(entry, dict):
                return f"{field}[{rel!r}] is {type(entry).__name__}, not an object"
    inputs = manifest.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        return "inputs is not a list of objects"
    return None


def verify_run(run_dir: str | os.PathLike[str], *, rehash_models: bool = False,
               remap: Mapping[str, str | os.PathLike[str]] | None = None) -> VerifyReport:
    """Re-check a run offline (see module docstring). :class:`MissingFileError` if it is not a run.

    ``rehash_models=True`` re-reads every base model file instead of trusting the hash cache. ``remap``
    (``{RECORDED: LOCAL}``) looks for what the run recorded outside itself under RECORDED (the base
    model, inputs, external parents) under LOCAL instead: the same files, elsewhere on this machine; the
    recorded digests still decide. A RECORDED the run never recorded is a :class:`ConfigError`.
    """
    root = Path(run_dir)
    require_run(root)
    pairs = remap_pairs(remap or {})
    stopped = unfinished_stage(root)
    if stopped is not None:
        # not a broken edge: the run never finished, so there is no attestation to check against (a run whose
        # report finished but whose attestation is gone stays a broken edge below)
        return VerifyReport(str(root), (), unfinished=stopped)
    v = Verifier(root, rehash_models=rehash_models, remap=pairs)
    att = v.check_attestation()
    v.check_run_files()
    v.check_stages(att)
    v.links.check_inputs(v.inputs)
    v.links.check_model_files(v.model_files)
    if att is not None:
        v.check_rebuilt_attestation(att)
    v.links.check_parents(v.records, v.ids_by_artifact, v.file_digest)
    if not v.errors:  # a broken edge is reported first; a --remap typo cannot hide it behind a usage error
        v.links.unused_remap()
    return VerifyReport(str(root), tuple(v.errors), v.counts, v.links.unchecked())


def verify_stage(run_dir: str | os.PathLike[str], stage: str) -> tuple[Broken, ...]:
    """The broken edges of one finished stage of a run that may still be going: check 3 of the module
    docstring (manifest form and fields, every record line, every file's digest, counts, chain roots),
    without the attestation, which is written only when the run finishes.

    The pipeline calls it before it treats a finished stage as done, so a stage never consumes an
    artifact that fails its manifest, and the pipeline and ``cleanroom verify`` name the same edge.
    """
    root = Path(run_dir)
    require_run(root)
    v = Verifier(root)
    v.attested = False
    v.read_run_meta()
    v.check_stage(stage)
    return tuple(v.errors)


__all__ = ["Broken", "TraceNode", "Unchecked", "Verifier", "VerifyReport", "format_trace", "list_records", "trace_record",
           "verify_run", "verify_stage"]

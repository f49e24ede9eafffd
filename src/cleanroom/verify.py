"""Offline verification of a run directory (behind ``cleanroom verify``); tracing (``cleanroom trace``) is
:mod:`cleanroom.trace`, re-exported here, and the report types are :mod:`cleanroom.broken`.

Size: ~500 lines, over the ~400 guideline on purpose: the checks are ordered so the first error reported
is the one closest to the change (below), and that order is easiest to keep in one file; the three checks
that reach outside the run (3b, 3c, 5) share one lookup (``--remap``) and one record of what did not run.

Verification trusts nothing in memory: every file of the run is re-read and re-hashed (no hash
cache). The base model's files, which live outside the run and may weigh 60 GB, are re-hashed
through :func:`~cleanroom.provenance.hash_file`'s cache, keyed by (path, size, mtime_ns, ctime_ns,
inode): a write to a file changes its ctime, so an edited ``tokenizer.json`` is re-read and caught
(``rehash_models=True`` bypasses the cache). The checks follow the edges of the run's hash graph, in
an order chosen so the *first* error reported is the edge closest to a change:

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

Each failure is a :class:`Broken` naming the file, line, check, expected and found values.

A check that did not run is reported as not run, never as passed. A base model directory (3c), a stage
input (3b) or an external parent artifact (5) that is not on this machine (the run was copied elsewhere)
cannot be re-hashed here: each becomes an :class:`Unchecked` entry (what, the path looked for, the
manifests or record files that recorded it, how to check it) and the report is ``partial``, not ``ok``.
A model directory that is there but lacks a recorded file is a broken edge, not an unchecked one.
``remap`` (``--remap RECORDED=LOCAL``) looks for such paths where the same files sit on this machine.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cleanroom.artifacts.attestation import build_attestation
from cleanroom.artifacts.layout import pretty_json, stage_names
from cleanroom.artifacts.records import _BLOCK_KEYS, CHAIN_SEED, chain_step
from cleanroom.broken import (
    UNCHECKED_NOUNS,
    Broken,
    Unchecked,
    UncheckedKind,
    VerifyReport,
    excerpt,
    first_diff,
    first_diff_line,
    how_to_check,
    require_run,
)
from cleanroom.errors import ConfigError, InputError
from cleanroom.jsonl import JsonLine, loads, scan_jsonl
from cleanroom.provenance import canonical_json, content_sha256, digest_path, hash_file, sha256_hex
from cleanroom.trace import TraceNode, format_trace, list_records, trace_record

#: The count each kind of unchecked entry adds to, in the order the checks run (3b, 3c, 5).
_UNCHECKED_COUNT: dict[UncheckedKind, str] = {"input": "inputs_unchecked", "model": "model_files_unchecked",
                                      "parent": "parents_unchecked"}


def _remap_pairs(remap: Mapping[str, str | os.PathLike[str]]) -> tuple[tuple[Path, Path], ...]:
    """``--remap RECORDED=LOCAL`` pairs, the longest RECORDED first; :class:`ConfigError` for one that cannot
    apply (RECORDED not absolute, LOCAL not here)."""
    pairs = []
    for old, new in remap.items():
        if not Path(old).is_absolute():
            raise ConfigError(f"--remap {old}={new}: RECORDED must be the absolute path the run recorded "
                              "(`cleanroom verify --json` lists them under unchecked)")
        if not Path(new).exists():
            raise ConfigError(f"--remap {old}={new}: {new} does not exist here; name the directory that holds "
                              f"what the run recorded under {old}")
        pairs.append((Path(old), Path(new).resolve()))
    return tuple(sorted(pairs, key=lambda pair: -len(pair[0].parts)))


class _Verifier:
    def __init__(self, root: Path, *, rehash_models: bool = False,
                 remap: tuple[tuple[Path, Path], ...] = ()) -> None:
        self.root = root
        self.resolved_root = root.resolve()  # once: inside() runs for every parent link
        self.rehash_models = rehash_models
        self.remap = remap
        self.remapped: dict[str, Path] = {}  # path looked for -> the path the run recorded, where --remap moved it
        self.outside: set[Path] = set()  # every path outside the run that the run recorded
        self.errors: list[Broken] = []
        # (kind, path looked for) -> the manifests or record files that recorded it; and how many checks
        self.skipped: dict[tuple[UncheckedKind, str], set[str]] = {}
        self.skipped_n: Counter[tuple[UncheckedKind, str]] = Counter()
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

    def fresh(self, path: Path) -> str:
        """Digest of a file or directory read from disk now (memoised for this one verification only)."""
        if path not in self._digests:
            self._digests[path] = digest_path(path, cache=False)
        return self._digests[path]

    def broken(self, file: str, line: int | None, check: str, expected: Any, found: Any) -> None:
        self.errors.append(Broken(file, line, check, expected, found))

    def inside(self, path: Path) -> bool:
        """Whether *path* lies in the run directory (as given, or resolved: a model built inside the run is
        recorded by its resolved path)."""
        return path.is_relative_to(self.root) or path.is_relative_to(self.resolved_root)

    def here(self, recorded: Path) -> Path:
        """Where a path the run recorded is looked for on this machine: moved by the first ``--remap`` whose
        RECORDED holds it, else where it was recorded. A path inside the run is never moved."""
        if self.inside(recorded):
            return recorded
        self.outside.add(recorded)
        for old, new in self.remap:
            if recorded.is_relative_to(old):
                self.remapped[str(new / recorded.relative_to(old))] = recorded
                return new / recorded.relative_to(old)
        return recorded

    def not_here(self, kind: UncheckedKind, path: Path, recorded_in: Iterable[str]) -> None:
        """One check of *kind* did not run: *path*, recorded in *recorded_in*, is not on this machine.

        A path inside the run is different: the run's own files travel with it, so one that is missing is damage
        to the run (a broken edge), never a check left for another machine."""
        if self.inside(path):
            for where in sorted(set(recorded_in)):
                self.broken(str(path), None, f"{UNCHECKED_NOUNS[kind][0]} recorded in {where} exists (inside the run)",
                            "present", "missing")
            return
        self.skipped.setdefault((kind, str(path)), set()).update(recorded_in)
        self.skipped_n[kind, str(path)] += 1
        self.counts[_UNCHECKED_COUNT[kind]] += 1

    def unchecked(self) -> tuple[Unchecked, ...]:
        """The checks that did not run, one entry per (kind, path), in the order the checks run."""
        order = list(_UNCHECKED_COUNT)
        keys = sorted(self.skipped, key=lambda key: (order.index(key[0]), key[1]))
        return tuple(
            Unchecked(kind, path, tuple(sorted(self.skipped[kind, path])), self.skipped_n[kind, path],
                      how_to_check(kind, self.remapped.get(path, Path(path))),
                      str(self.remapped[path]) if path in self.remapped else None)
            for kind, path in keys
        )

    def unused_remap(self) -> None:
        """:class:`ConfigError` for a ``--remap`` under whose RECORDED the run recorded nothing (a typo would
        otherwise leave every check it meant to enable unchecked, without saying why)."""
        for old, new in self.remap:
            if not any(p.is_relative_to(old) for p in self.outside):
                shown = ", ".join(sorted(map(str, self.outside))[:5]) or "none"
                raise ConfigError(f"--remap {old}={new}: the run recorded no path under {old}; the paths outside "
                                  f"the run it recorded include: {shown}")

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

    def check_run_files(self) -> None:
        meta = self.load_json(self.root / "run.json", "run.json")
        if isinstance(meta, dict):
            self.run_id, self.config_sha = meta.get("run_id"), meta.get("config_sha256")
        self.check_subject("run.json", self.root / "run.json")
        self.check_subject("config.resolved.yaml", self.root / "config.resolved.yaml")
        try:
            config = yaml.safe_load((self.root / "config.resolved.yaml").read_text())
            found = sha256_hex(canonical_json(config))
        except (yaml.YAMLError, InputError, UnicodeDecodeError) as exc:
            self.broken("config.resolved.yaml", None, "valid YAML", "the resolved config", str(exc)[:200])
            return
        if found != self.config_sha:
            self.broken("config.resolved.yaml", None, "config sha256 recorded in run.json", self.config_sha, found)

    def stage_names(self) -> list[str]:
        return stage_names(self.root)

    def check_stage(self, stage: str) -> None:
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
            self.check_record_file(stage, rel, producer, attempts, records[rel])
        on_disk = {
            f.relative_to(sdir).as_posix()
            for f in sdir.rglob("*")
            if f.is_file() and f.relative_to(sdir).as_posix() != "manifest.json"
        }
        on_disk = {r for r in on_disk if not (Path(r).name.startswith(".") and r.endswith(".tmp"))}
        for rel in sorted(set(files) | on_disk):
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
        self.inputs.extend((mname, inp) for inp in manifest.get("inputs", []) if isinstance(inp, dict))
        model = manifest["provenance"].get("model") if isinstance(manifest["provenance"], dict) else None
        if isinstance(model, dict) and isinstance(model.get("files"), dict):
            for rel, sha in model["files"].items():
                self.model_files.setdefault((str(model.get("resolved_path")), rel), []).append((mname, sha))

    def check_inputs(self) -> None:
        """Stage inputs still match the digests taken when each stage started (after all stages' own checks,
        so an edited file is first reported by its own stage, at its line)."""
        for mname, inp in self.inputs:
            p = Path(str(inp.get("path")))
            target = self.here(p if p.is_absolute() else self.root / p)
            if not target.exists():
                self.not_here("input", target, (mname,))
                continue
            self.counts["inputs"] += 1
            found = self.fresh(target)
            if found != inp.get("sha256"):
                self.broken(str(inp.get("path")), None, f"input sha256 recorded in {mname}", inp.get("sha256"), found)

    def check_model_files(self) -> None:
        """Re-hash the base model files the stages recorded, where they are (see module docstring, 3c)."""
        for (base, rel), recorded in sorted(self.model_files.items()):
            root = self.here(Path(base))
            target = root if root.is_file() and root.name == rel else root / rel
            if not root.exists():
                self.not_here("model", root, (mname for mname, _ in recorded))
                continue
            if not target.is_file():
                for mname, sha in recorded:
                    self.broken(str(target), None, f"base model file recorded in {mname} exists", sha, "missing")
                continue
            found = hash_file(target, cache=not self.rehash_models)
            self.counts["model_files"] += 1
            for mname, sha in recorded:
                if sha != found:
                    self.broken(str(target), None, f"sha256 of the base model file recorded in {mname}", sha, found)

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

    def check_parents(self) -> None:
        for rid, (artifact, lineno, record) in self.records.items():
            parents = record["provenance"].get("parents")
            if not isinstance(parents, list):
                self.broken(artifact, lineno, "parents is a list", "list", type(parents).__name__)
                continue
            for i, parent in enumerate(parents):
                where = f"parent {i} of {rid}"
                if not isinstance(parent, dict) or not isinstance(parent.get("artifact"), str):
                    self.broken(artifact, lineno, f"{where} shape", "{artifact, sha256, record_id}", repr(parent))
                    continue
                name, want_sha, pid = parent["artifact"], parent.get("sha256"), parent.get("record_id")
                if want_sha is None and name.split("/", 1)[0] != artifact.split("/", 1)[0]:
                    self.broken(artifact, lineno, f"{where}: sha256 of {name} recorded in the link",
                                "the digest of a finished stage's or an external file", None)
                external = self.here(Path(name)) if Path(name).is_absolute() else Path(name)
                if external.is_absolute() and not external.exists():
                    self.not_here("parent", external, (artifact,))  # its digest cannot be checked here
                    continue
                self.counts["parents"] += 1
                if external.is_absolute():
                    if want_sha is not None and self.fresh(external) != want_sha:
                        self.broken(artifact, lineno, f"{where}: sha256 of {name}", want_sha, self.fresh(external))
                    continue
                if name in self.ids_by_artifact:
                    found_sha = self.file_digest.get(name)
                    if want_sha is not None and want_sha != found_sha:
                        self.broken(artifact, lineno, f"{where}: sha256 of {name}", want_sha, found_sha)
                    if pid is not None and pid not in self.ids_by_artifact[name]:
                        self.broken(artifact, lineno, f"{where}: record_id in {name}", pid, "no such record")
                    continue
                target = self.root / name
                if not target.exists():
                    self.broken(artifact, lineno, f"{where}: artifact exists", name, "missing")
                elif want_sha is not None and self.fresh(target) != want_sha:
                    self.broken(artifact, lineno, f"{where}: sha256 of {name}", want_sha, self.fresh(target))


#: Stage 1's stages in pipeline order (pipelines/stage1.py's STAGES, then the report; a test keeps them equal).
STAGE1_ORDER = ("preflight", "baseline", "sft_data", "sft", "merge", "pairs", "dpo", "eval", "report")


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


def first_unfinished_stage(root: Path) -> str:
    """The stage a killed run was inside (``stage.json`` without a manifest, which is written only on a clean
    finish), else the first stage of :data:`STAGE1_ORDER` without a manifest."""
    started = sorted(d.name for d in root.iterdir() if (d / "stage.json").is_file() and not (d / "manifest.json").exists())
    if started:
        return started[0]
    return next((s for s in STAGE1_ORDER if not (root / s / "manifest.json").is_file()), "finalize")


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
    pairs = _remap_pairs(remap or {})
    if not (root / "attestation.json").exists() and not (root / "report" / "manifest.json").exists():
        # not a broken edge: the run never finished, so there is no attestation to check against (a run whose
        # report finished but whose attestation is gone stays a broken edge below)
        return VerifyReport(str(root), (), unfinished=first_unfinished_stage(root))
    v = _Verifier(root, rehash_models=rehash_models, remap=pairs)
    att = v.check_attestation()
    v.check_run_files()
    for stage in v.stage_names():
        v.check_stage(stage)
    v.check_inputs()
    v.check_model_files()
    if att is not None:
        v.check_rebuilt_attestation(att)
    v.check_parents()
    if not v.errors:  # a broken edge is reported first; a --remap typo cannot hide it behind a usage error
        v.unused_remap()
    return VerifyReport(str(root), tuple(v.errors), v.counts, v.unchecked())


def verify_stage(run_dir: str | os.PathLike[str], stage: str) -> tuple[Broken, ...]:
    """The broken edges of one finished stage of a run that may still be going: check 3 of the module
    docstring (manifest form and fields, every record line, every file's digest, counts, chain roots),
    without the attestation, which is written only when the run finishes.

    The pipeline calls it before it treats a finished stage as done, so a stage never consumes an
    artifact that fails its manifest, and the pipeline and ``cleanroom verify`` name the same edge.
    """
    root = Path(run_dir)
    require_run(root)
    v = _Verifier(root)
    v.attested = False
    meta = v.load_json(root / "run.json", "run.json")
    if isinstance(meta, dict):
        v.run_id, v.config_sha = meta.get("run_id"), meta.get("config_sha256")
    v.check_stage(stage)
    return tuple(v.errors)


__all__ = [
    "STAGE1_ORDER",
    "Broken",
    "TraceNode",
    "Unchecked",
    "VerifyReport",
    "first_unfinished_stage",
    "format_trace",
    "list_records",
    "trace_record",
    "verify_run",
    "verify_stage",
]

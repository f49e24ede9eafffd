"""Run directories, crash-safe JSONL record files, stage manifests and the run attestation.

One module a concept: :mod:`~cleanroom.artifacts.records` (the record chain), :mod:`~cleanroom.artifacts.rundir`
(the run and stage lifecycle), :mod:`~cleanroom.artifacts.attestation` (in-toto), :mod:`~cleanroom.artifacts.layout`
(names and schemas on disk); atomic writes are :mod:`cleanroom.fs`, plain JSONL :mod:`cleanroom.jsonl`.

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

from cleanroom.artifacts.attestation import PREDICATE_TYPE, STATEMENT_TYPE, build_attestation
from cleanroom.artifacts.layout import MANIFEST_SCHEMA, RUN_SCHEMA, pretty_json
from cleanroom.artifacts.records import CHAIN_SEED, RecordWriter, chain_step, read_records, write_records
from cleanroom.artifacts.rundir import RunDir, StageWriter
from cleanroom.fs import atomic_write_bytes

__all__ = [
    "CHAIN_SEED",
    "MANIFEST_SCHEMA",
    "PREDICATE_TYPE",
    "RUN_SCHEMA",
    "STATEMENT_TYPE",
    "RecordWriter",
    "RunDir",
    "StageWriter",
    "atomic_write_bytes",
    "build_attestation",
    "chain_step",
    "pretty_json",
    "read_records",
    "write_records",
]

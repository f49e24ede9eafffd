"""Reading the verdict files ``eval compare`` pairs: one JSON line per prompt, each checked against its own digest.

Each line is ``{"key", "strict": {...}, "loose": {...}, "conditions": {...}, "provenance": {...}, ...}``.
Every writer of verdicts in cleanroom (``eval score``, ``eval run``, the pipeline's eval stage) gives each record
a provenance block whose ``content_sha256`` is ``sha256(canonical_json(record without provenance))``
(:func:`cleanroom.hashing.content_sha256`), so it covers the verdicts, the response and the ``conditions`` the
comparison relies on. Where a record carries that digest it is recomputed here and a mismatch is refused (exit 2,
file and line): an edited condition must not make two files look comparable. The digest is not a signature —
whoever edits a record can recompute it — so it catches edits made without cleanroom, not forgery; ``cleanroom
verify`` checks a run's files against its manifests and attestation. A record without the digest (a file not
written by cleanroom) is read as written, and the file is named as unverified in the comparison's notes.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cleanroom.errors import InputError, MissingFileError, StatisticsError
from cleanroom.hashing import canonical_json, content_sha256, sha256_hex
from cleanroom.jsonl import iter_jsonl

MODES = ("strict", "loose")


@dataclass(frozen=True)
class Verdicts:
    """One verdict file: per key the prompt-level and instruction-level pass/fail, the recorded conditions,
    how many records lacked a content digest, and ``outputs_sha256``: a digest over every record apart from
    its conditions and provenance (same value ⇔ the same responses and verdicts at every key)."""

    label: str
    path: Path
    prompt: dict[Hashable, bool]
    instructions: dict[Hashable, tuple[bool, ...]]
    conditions: dict[Hashable, dict[str, Any] | None]
    undigested: int
    outputs_sha256: str


def _check_digest(rec: dict[str, Any], where: str) -> bool:
    """True when the record carries ``provenance.content_sha256`` and it matches; InputError when it does not."""
    block = rec.get("provenance")
    recorded = block.get("content_sha256") if isinstance(block, dict) else None
    if recorded is None:
        return False
    try:
        actual = content_sha256(rec)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if recorded != actual:
        raise InputError(
            f"{where}: provenance.content_sha256 is {str(recorded)[:16]}… but the record hashes to {actual[:16]}…; "
            "the record (its conditions, response or verdicts) was edited after it was written — re-score the "
            "responses with `cleanroom eval score` instead of editing verdicts"
        )
    return True


def _verdict_block(rec: dict[str, Any], mode: str, where: str) -> tuple[bool, tuple[bool, ...]]:
    block = rec.get(mode)
    if not isinstance(block, dict):
        raise InputError(f"{where}: missing the {mode!r} block ({{follow_all_instructions, follow_instruction_list}})")
    follow_all = block.get("follow_all_instructions")
    follow_list = block.get("follow_instruction_list")
    if not isinstance(follow_all, bool):
        raise InputError(f"{where}: {mode}.follow_all_instructions must be true/false, got {follow_all!r}")
    if not isinstance(follow_list, list) or not follow_list or not all(isinstance(v, bool) for v in follow_list):
        raise InputError(
            f"{where}: {mode}.follow_instruction_list must be a non-empty list of true/false, got {follow_list!r}"
        )
    if follow_all != all(follow_list):
        raise InputError(
            f"{where}: {mode}.follow_all_instructions={follow_all} disagrees with follow_instruction_list "
            f"{follow_list}; the file is inconsistent — re-score it"
        )
    return follow_all, tuple(follow_list)


def read_verdict_file(path: Path | str, *, mode: str = "strict") -> Verdicts:
    """Read one verdict JSONL; a malformed line, or a record that fails its own digest, raises InputError naming
    file and line."""
    if mode not in MODES:
        raise StatisticsError(f"mode={mode!r}; expected one of {MODES}")
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"verdict file {p} does not exist; produce it with `cleanroom eval score`")
    prompt: dict[Hashable, bool] = {}
    instructions: dict[Hashable, tuple[bool, ...]] = {}
    first_line: dict[Hashable, int] = {}
    conditions: dict[Hashable, dict[str, Any] | None] = {}
    outputs: dict[Hashable, bytes] = {}
    undigested, first_undigested = 0, 0
    # one reader for every JSONL file (cleanroom.jsonl): encoding, BOM, blank lines, an empty file
    for lineno, rec in iter_jsonl(p, what="verdict file"):
        where = f"{p} line {lineno}"
        if "key" not in rec:
            raise InputError(f"{where}: expected a JSON object with a 'key'; re-score with `cleanroom eval score`")
        key = rec["key"]
        if not isinstance(key, (int, str)) or isinstance(key, bool):
            raise InputError(f"{where}: key {key!r} must be an int or a string")
        if key in first_line:
            raise InputError(f"{where}: key {key!r} repeats line {first_line[key]}; each key must appear once")
        prompt[key], instructions[key] = _verdict_block(rec, mode, where)
        if not _check_digest(rec, where):
            undigested += 1
            first_undigested = first_undigested or lineno
        first_line[key] = lineno
        conditions[key] = rec["conditions"] if isinstance(rec.get("conditions"), dict) else None
        outputs[key] = canonical_json({k: v for k, v in rec.items() if k not in ("conditions", "provenance")})
    if not prompt:
        raise InputError(f"verdict file {p} holds no verdicts; score some prompts first")
    if 0 < undigested < len(prompt):
        # a writer digests every record or none: a record without one among digested records was added or edited
        raise InputError(
            f"{p} line {first_undigested}: no provenance.content_sha256, while {len(prompt) - undigested} other "
            "record(s) of the file carry one; the record was added or edited after the file was written — re-score "
            "the responses with `cleanroom eval score` instead of editing verdicts"
        )
    ordered = b"\n".join(outputs[k] for k in sorted(outputs, key=repr))
    return Verdicts(p.stem, p, prompt, instructions, conditions, undigested, sha256_hex(ordered))


def check_distinct_files(files: Sequence[Verdicts]) -> None:
    """A file compared with itself can show no difference: the same file (a path, a link to it, a hard link)
    given twice is refused, naming both arguments. Identical *contents* under two files are not refused —
    an adapter that never moved off its zero initialisation gives exactly the base model's outputs, and
    that is a finding — the comparison's notes say so instead."""
    for i, a in enumerate(files):
        for j in range(i + 1, len(files)):
            if a.path.samefile(files[j].path):
                raise InputError(
                    f"eval compare: {files[j].path} (file {j + 1}) is the same file as {a.path} (file {i + 1}); "
                    "a file compared with itself always shows no difference — pass each system's own verdict file"
                )


def check_same_keys(files: Sequence[Verdicts]) -> list[Hashable]:
    """The keys every file holds (the first file's order); InputError naming up to ten missing per file."""
    keys = list(files[0].prompt)
    ref = set(keys)
    problems = []
    for f in files[1:]:
        other = set(f.prompt)
        for missing, holder, lacker in ((ref - other, files[0], f), (other - ref, f, files[0])):
            if missing:
                shown = sorted(missing, key=repr)[:10]
                more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
                problems.append(
                    f"{lacker.path} lacks {len(missing)} key(s) present in {holder.path}: "
                    f"{', '.join(map(repr, shown))}{more}"
                )
    if problems:
        raise InputError(
            "verdict files must hold the same keys to be paired; " + "; ".join(problems)
            + " — score every system on the same eval set"
        )
    return keys


__all__ = ["MODES", "Verdicts", "check_distinct_files", "check_same_keys", "read_verdict_file"]

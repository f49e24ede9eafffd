"""IFEval-format files: prompts ``{key, prompt, instruction_id_list, kwargs}`` and responses ``{key, response}``.

Records may carry the ``provenance`` block cleanroom writes (``cleanroom eval make-set``, a run's
``preflight/``) or none (a user's own file): readers ignore it either way. Responses are joined to
prompts on ``key`` (never on prompt text, which the reference tooling does and which breaks silently
when a prompt is corrected). Every prompt's instructions are constructed while reading, so a
malformed kwarg fails at load time with the file and line, not mid-scoring.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cleanroom.errors import InputError
from cleanroom.hashing import sha256_file
from cleanroom.ifeval.checkers import Instruction, build_instruction
from cleanroom.jsonl import iter_jsonl, loads

Key = int | str


@dataclass(frozen=True)
class PromptRecord:
    """One IFEval prompt: the instructions it carries and their keyword arguments (one dict each)."""

    key: Key
    prompt: str
    instruction_id_list: tuple[str, ...]
    kwargs: tuple[Mapping[str, Any], ...] = field(hash=False)

    def instructions(self) -> list[Instruction]:
        where = f"prompt key {self.key!r}"
        return [build_instruction(i, k, where=where) for i, k in zip(self.instruction_id_list, self.kwargs, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "prompt": self.prompt,
            "instruction_id_list": list(self.instruction_id_list),
            "kwargs": [dict(k) for k in self.kwargs],
        }


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a prompt or response file (:func:`cleanroom.hashing.sha256_file`)."""
    return sha256_file(path)


def _lines(path: Path, what: str) -> Iterator[tuple[int, dict]]:
    return iter_jsonl(path, what=what)


def _key(obj: dict, path: Path, lineno: int) -> Key:
    key = obj.get("key")
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise InputError(f"{path} line {lineno}: 'key' must be an integer or string, got {key!r}")
    return key


def prompt_record_from_dict(obj: Mapping[str, Any], *, where: str = "prompt") -> PromptRecord:
    """Validate one prompt object (and construct its instructions)."""
    prompt = obj.get("prompt")
    ids = obj.get("instruction_id_list")
    kwargs = obj.get("kwargs")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: 'prompt' must be a non-empty string")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise InputError(f"{where}: 'instruction_id_list' must be a non-empty list of strings")
    if kwargs is None:
        kwargs = [{} for _ in ids]
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise InputError(f"{where}: 'kwargs' must be a list of {len(ids)} objects, one per instruction")
    # The key is validated by the callers (``_key`` for files; generated ints in ``evalset``).
    rec = PromptRecord(cast(Key, obj.get("key")), prompt, tuple(ids), tuple(dict(k) for k in kwargs))
    rec.instructions()  # fail at load time on a bad id or kwarg
    return rec


def read_prompts(path: str | Path, *, sha256: str | None = None) -> list[PromptRecord]:
    """Read and validate an IFEval prompt file; ``sha256`` pins its content (ConfigError-free: InputError)."""
    path = Path(path)
    if sha256 is not None:
        actual = file_sha256(path) if path.is_file() else None
        if actual != sha256:
            raise InputError(f"{path}: sha256 {actual} does not match the pinned {sha256}; use the pinned file")
    records: list[PromptRecord] = []
    seen: dict[Key, int] = {}
    for lineno, obj in _lines(path, "prompt file"):
        key = _key(obj, path, lineno)
        if key in seen:
            raise InputError(f"{path} line {lineno}: duplicate key {key!r} (first on line {seen[key]})")
        seen[key] = lineno
        records.append(prompt_record_from_dict(obj, where=f"{path} line {lineno} (key {key!r})"))
    if not records:
        raise InputError(f"{path}: no prompts; expected JSONL lines {{key, prompt, instruction_id_list, kwargs}}")
    return records


def read_responses(path: str | Path) -> dict[Key, str]:
    """Read ``{key, response}`` lines (a ``prompt`` field is ignored) into ``{key: response}``."""
    path = Path(path)
    out: dict[Key, str] = {}
    for lineno, obj in _lines(path, "responses file"):
        key = _key(obj, path, lineno)
        response = obj.get("response")
        if not isinstance(response, str):
            raise InputError(f"{path} line {lineno}: 'response' must be a string, got {type(response).__name__}")
        if key in out:
            raise InputError(f"{path} line {lineno}: duplicate response for key {key!r}")
        out[key] = response
    return out



#: Fields of a responses record that say how its response was produced (kept as its verdict's conditions).
RESPONSE_CONDITIONS = ("model", "generation", "rendering")


def read_response_conditions(path: str | Path) -> dict[Key, dict[str, Any]]:
    """``{key: {model, generation, rendering}}`` from a responses file; a field the file does not carry is
    None (not recorded), which ``eval compare`` refuses to take as equal."""
    path = Path(path)
    return {_key(obj, path, lineno): {f: obj.get(f) for f in RESPONSE_CONDITIONS}
            for lineno, obj in _lines(path, "responses file")}


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        obj = loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def produced_by(path: Path, stage: str) -> bool:
    """Whether *path* is an output of the cleanroom command whose provenance names *stage*, told by content:
    a record file whose first record's producer is *stage* (``eval score --out``, ``make-set``'s JSONL files),
    or a JSON file whose provenance block is *stage*'s (``--summary``, ``eval_set.json``). Anything else, a
    file too damaged to tell included, is not, so an output never silently replaces a user's file."""
    with open(path, "rb") as fh:
        first = _json_object(fh.readline(1 << 24))
    if first is None and path.stat().st_size < 1 << 24:  # not one record a line: one JSON document
        first = _json_object(path.read_bytes())
    prov = first.get("provenance") if first is not None else None
    if not isinstance(prov, dict):
        return False
    producer = prov.get("producer")
    named = producer.get("stage") if isinstance(producer, dict) else prov.get("stage", prov.get("generator"))
    return named == stage

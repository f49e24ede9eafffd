"""The provenance record, canonical hashing and secret redaction.

Why canonical JSON: a digest is only useful if two honest writers of the same content produce the
same bytes. ``canonical_json`` fixes the one serialisation we hash: keys sorted, no whitespace, UTF-8
with non-ASCII kept as is (``ensure_ascii=False``), floats as Python's shortest round-trip ``repr``,
and NaN/Infinity rejected (they are not JSON and compare unequal to themselves).

``content_sha256(payload) = sha256(canonical_json(payload minus its "provenance" block))`` — the
digest every record carries of its own data. ``hash_file`` hashes a model shard once: its digest is
kept in memory, and for files of at least ``DISK_CACHE_MIN_BYTES`` also on disk under the cleanroom
cache directory, keyed by (resolved path, size, mtime_ns, ctime_ns, inode) — so re-capturing
provenance for every stage of a run, or verifying the run later in a new process, does not re-read a
65 GB base model. ctime and inode are in the key because ``touch -r`` or ``cp -p`` can restore an
edited file's mtime, but not its ctime (the kernel sets it on every write) or its inode (a copy).
Timestamps advance by the kernel's clock tick (milliseconds), so only an edit within the tick of the
hash itself keeps the key; ``cache=False`` sees that one too.

A :class:`ProvenanceRecord` is captured once per stage and answers "which code, model files,
settings and machine produced this": cleanroom version, git commit and dirty flag, the loader's own
provenance dict, the model files' digests, quantization, generation parameters, seeds, the config's
digest, package versions, hardware and a timestamp. Secrets never enter it: :func:`redact` masks
URL credentials, token-shaped strings, values of secret-named keys, and any occurrence of the value
of a secret-named environment variable (``HF_TOKEN``, ``*_API_KEY``...). Environment variables are
never recorded wholesale.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleanroom.errors import InputError, MissingFileError, ProvenanceError

SCHEMA = "cleanroom.provenance/v1"
REDACTED = "***"

# Model-directory files whose bytes decide behaviour. Weight shards are matched by suffix.
MODEL_META_FILES: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "adapter_config.json",
)
WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".gguf", ".bin", ".pt", ".pth")


# --------------------------------------------------------------------------- canonical hashing


def _check_json(obj: Any, where: str) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise InputError(f"{where} is {obj!r}; canonical JSON rejects NaN and Infinity — store None or a string")
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise InputError(f"{where} has key {key!r} of type {type(key).__name__}; JSON keys must be str")
            _check_json(value, f"{where}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_json(value, f"{where}[{i}]")
    elif not (obj is None or isinstance(obj, (str, int, float, bool))):
        raise InputError(
            f"{where} is a {type(obj).__name__}, not a JSON value; convert it (str(path), list(array)) first"
        )


def canonical_json(obj: Any) -> bytes:
    """The one serialisation cleanroom hashes: sorted keys, no whitespace, UTF-8, repr floats, no NaN."""
    _check_json(obj, "value")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of *data*."""
    return hashlib.sha256(data).hexdigest()


def content_sha256(payload: Mapping[str, Any]) -> str:
    """SHA-256 of ``canonical_json(payload)`` with its ``"provenance"`` block removed."""
    if not isinstance(payload, Mapping):
        raise InputError(f"payload is a {type(payload).__name__}; records are JSON objects (dict)")
    return sha256_hex(canonical_json({k: v for k, v in payload.items() if k != "provenance"}))


_FILE_HASH_CACHE: dict[tuple[str, int, int, int, int], str] = {}
# Below this size hashing a file is cheaper than reading a cache entry back; tests lower it.
DISK_CACHE_MIN_BYTES = 16 << 20


def _disk_cache_entry(key: tuple[str, int, int, int, int]) -> Path:
    """``<cache>/sha256/<path digest>-<key digest>.json``: one entry per version of a file; the
    prefix names the path, so writing a new version removes the old ones (the cache stays one entry
    per large file ever hashed, not one per edit)."""
    from cleanroom.fixtures import cache_root

    return cache_root() / "sha256" / f"{_path_tag(key[0])}-{sha256_hex(canonical_json(list(key)))}.json"


def _path_tag(path: str) -> str:
    return sha256_hex(path.encode("utf-8", "surrogatepass"))[:16]


def _read_disk_cache(key: tuple[str, int, int, int, int]) -> str | None:
    """The digest remembered for *key*, or None: a missing, unreadable or corrupt entry is a miss."""
    try:
        entry = json.loads(_disk_cache_entry(key).read_bytes())
        digest = entry["sha256"]
        if entry["key"] == list(key) and isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest):
            return digest
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_disk_cache(key: tuple[str, int, int, int, int], digest: str) -> None:
    """Remember a digest (temp file + fsync + rename) and forget the file's older versions; a cache
    that cannot be written is skipped."""
    from cleanroom.artifacts import atomic_write_bytes

    entry = _disk_cache_entry(key)
    try:
        atomic_write_bytes(entry, canonical_json({"key": list(key), "sha256": digest}))
        for stale in entry.parent.glob(f"{_path_tag(key[0])}-*.json"):
            if stale != entry:
                stale.unlink(missing_ok=True)
    except OSError:
        pass


def _file_key(path: Path) -> tuple[str, int, int, int, int]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _read_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_file(path: str | os.PathLike[str], *, cache: bool = True) -> str:
    """Hex SHA-256 of a file, cached by (resolved path, size, mtime_ns, ctime_ns, inode).

    The cache lives in memory and, for files of at least ``DISK_CACHE_MIN_BYTES``, on disk under
    ``$CLEANROOM_CACHE/sha256/`` (one small JSON entry per file version), so a new process does not
    re-read a base model's shards. ``cache=False`` re-reads the file and trusts no cache (it still
    refreshes both). A digest is remembered only when the file's key did not change while it was read.
    """
    p = Path(path)
    try:
        resolved = p.resolve(strict=True)
        key = _file_key(resolved)
    except FileNotFoundError:
        raise MissingFileError(f"{p}: no such file to hash; check the path") from None
    if not resolved.is_file():
        raise InputError(f"{p} is not a regular file; hash_file hashes files (use hash_tree for a directory)")
    on_disk = key[1] >= DISK_CACHE_MIN_BYTES
    if cache:
        cached = _FILE_HASH_CACHE.get(key) or (_read_disk_cache(key) if on_disk else None)
        if cached is not None:
            _FILE_HASH_CACHE[key] = cached
            return cached
    digest = _read_sha256(resolved)
    if _file_key(resolved) == key:  # not written to while it was read: the digest belongs to the key
        _FILE_HASH_CACHE[key] = digest
        if on_disk:
            _write_disk_cache(key, digest)
    return digest


def hash_tree(path: str | os.PathLike[str], *, cache: bool = True) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every regular file under a directory (sorted, recursive)."""
    root = Path(path)
    if not root.is_dir():
        raise MissingFileError(f"{root}: not a directory")
    return {
        f.relative_to(root).as_posix(): hash_file(f, cache=cache) for f in sorted(root.rglob("*")) if f.is_file()
    }


def digest_path(path: str | os.PathLike[str], *, cache: bool = True) -> str:
    """SHA-256 of a file, or of a directory as ``sha256(canonical_json(hash_tree(dir)))``."""
    p = Path(path)
    if p.is_dir():
        return sha256_hex(canonical_json(hash_tree(p, cache=cache)))
    return hash_file(p, cache=cache)


# --------------------------------------------------------------------------- secrets

_SECRET_NAME = re.compile(r"(?i)(token|secret|passw|api_?key|access_?key|private_?key|credential|auth|cookie)")
# Parts of names that contain a secret word but hold tokenizer facts or people, never secrets
# (pad_token, max_new_tokens, tokenizer_file, author, GIT_AUTHOR_NAME). They are cut out before
# _SECRET_NAME looks at what is left, so "author_token" is still a secret; "author" must end the
# name or a word, so "Authorization" is not exempt.
_NOT_SECRET_PART = re.compile(
    r"(?i)(tokeniz|tokens|(pad|eos|bos|unk|sep|cls|mask|special|added)_token|token_?id|authors?(?![a-z]))"
)
# Query parameters whose values are secrets although their names say less (SAS and S3 signatures,
# ?key=, ?pwd=); matched against the name's words. Names _SECRET_NAME flags are secrets too.
_SECRET_QUERY_WORDS = frozenset({"sig", "signature", "key", "apikey", "pwd", "pass", "secret", "session", "sessionid", "jsessionid"})


# ...but "tokens" after a credential word is a list of credentials (API_TOKENS, github_tokens).
_SECRET_TOKENS = re.compile(
    r"(?i)(?<![a-z0-9])(api|access|auth|bearer|refresh|session|oauth|secret|bot|personal|service|github|gh|gitlab|hf|hub"
    r"|slack|openai|wandb|mlflow|aws|azure|gcp)[_-]?tokens"
)


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_TOKENS.search(name) or _SECRET_NAME.search(_NOT_SECRET_PART.sub(" ", name)))


def _is_secret_query_name(name: str) -> bool:
    return _is_secret_name(name) or any(w in _SECRET_QUERY_WORDS for w in re.split(r"[^a-z0-9]+", name.lower()))


_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s\"'<>]*")
# Userinfo runs to the LAST "@" before the first "/": a password may itself hold "@", "?" or "#"
# (https://u:p@ss@host -> https://***@host). A "@" in a query before any "/" over-masks; never leaks.
_URL_USERINFO = re.compile(r"(?<=://)[^/]*@")
_URL_PARAM = re.compile(r"([?&;#])([^=&;#]+)=([^&;#]*)")
_SECRET_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{20,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._\-]{8,}"),
)


def _redact_url(match: re.Match[str]) -> str:
    url = _URL_USERINFO.sub(REDACTED + "@", match.group(0), count=1)
    return _URL_PARAM.sub(
        lambda m: f"{m[1]}{m[2]}={REDACTED}" if m[3] and _is_secret_query_name(m[2]) else m[0], url
    )


MIN_SECRET_LEN = 6  # shorter env values ("1", "true") are not secrets and would mask everything


def secret_env_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{name: value}`` of environment variables whose *name* says they hold a secret."""
    env = os.environ if environ is None else environ
    return {
        k: v for k, v in env.items() if _is_secret_name(k) and len(v.strip()) >= MIN_SECRET_LEN
    }


def _redact_str(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    text = _URL.sub(_redact_url, text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def redact(obj: Any, *, environ: Mapping[str, str] | None = None) -> Any:
    """A deep copy of *obj* with secrets masked as ``***``.

    Masks: values of secret-named keys (``token``, ``api_key``, ``password``, ``Authorization``...),
    URL credentials (userinfo up to the last ``@`` before the host; query or fragment parameters such
    as ``?token=``, ``sig=``, ``key=``, ``access_token=``), token-shaped strings (``hf_...``, ``sk-...``, ``ghp_...``, AWS keys, ``Bearer ...``) and any
    occurrence of the value of a secret-named environment variable.
    """
    secrets = sorted(secret_env_values(environ).values(), key=len, reverse=True)

    def walk(value: Any, key: str | None) -> Any:
        if key is not None and _is_secret_name(key) and isinstance(value, str) and value:
            return REDACTED
        if isinstance(value, str):
            return _redact_str(value, secrets)
        if isinstance(value, Mapping):
            return {k: walk(v, k if isinstance(k, str) else None) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v, key) for v in value]  # items of a secret-named list are secrets too
        return value

    return walk(obj, None)


def find_secret(data: bytes | str, *, environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the secret-named environment variable whose value occurs in *data*, else None."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    for name, value in secret_env_values(environ).items():
        if value in text:
            return name
    return None


# --------------------------------------------------------------------------- the record


def model_file_digests(model_path: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative name: sha256}`` of a model's config, generation config, tokenizer and weight files.

    *model_path* is a model directory or a single weight file (a GGUF). Other files (README, images)
    do not change behaviour and are left out.
    """
    p = Path(model_path)
    if p.is_file():
        return {p.name: hash_file(p)}
    if not p.is_dir():
        raise MissingFileError(
            f"model path {p} does not exist locally; cleanroom hashes local files only — download the "
            "model first and pass its directory"
        )
    out: dict[str, str] = {}
    for f in sorted(p.rglob("*")):
        if not f.is_file() or any(part.startswith(".") for part in f.relative_to(p).parts):
            continue
        if f.name in MODEL_META_FILES or f.suffix in WEIGHT_SUFFIXES:
            out[f.relative_to(p).as_posix()] = hash_file(f)
    return out


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
        return {
            "schema": self.schema,
            "stage": self.stage,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "cleanroom_version": self.cleanroom_version,
            "git": copy.deepcopy(self.git),
            "config_sha256": self.config_sha256,
            "model": copy.deepcopy(self.model),
            "loader": copy.deepcopy(self.loader),
            "loader_version": self.loader_version,
            "quantization": copy.deepcopy(self.quantization),
            "generation": copy.deepcopy(self.generation),
            "seeds": copy.deepcopy(self.seeds),
            "packages": copy.deepcopy(self.packages),
            "hardware": copy.deepcopy(self.hardware),
            "extra": copy.deepcopy(self.extra),
        }

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
    import cleanroom
    from cleanroom.environment import git_state, hardware_info, package_versions

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
        cleanroom_version=cleanroom.__version__,
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
    "ProvenanceRecord",
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

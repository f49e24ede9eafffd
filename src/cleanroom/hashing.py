"""Canonical JSON, SHA-256 digests of values, files and trees, and the on-disk hash cache.

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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cleanroom.errors import InputError, MissingFileError
from cleanroom.fs import atomic_write_bytes
from cleanroom.paths import cache_root


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


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read once (``hashlib.file_digest``), no cache."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_sha256(path: Path) -> str:
    return sha256_file(path)


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


__all__ = [
    "DISK_CACHE_MIN_BYTES",
    "canonical_json",
    "content_sha256",
    "digest_path",
    "hash_file",
    "hash_tree",
    "sha256_file",
    "sha256_hex",
]

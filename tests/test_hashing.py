"""cleanroom.hashing: file digests against hashlib, the in-memory and on-disk hash cache, cache misses and repairs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from cleanroom import hashing
from cleanroom.errors import MissingFileError
from cleanroom.hashing import canonical_json, hash_file, sha256_hex


def test_hash_file_matches_hashlib_and_cache_tracks_changes(tmp_path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 3000)
    assert hash_file(f) == hashlib.sha256(b"a" * 3000).hexdigest()
    f.write_bytes(b"b" * 3001)  # size changes: the cache key changes
    assert hash_file(f) == hashlib.sha256(b"b" * 3001).hexdigest()
    f.write_bytes(b"d" * 3001)
    os.utime(f, ns=(1, 1))
    assert hash_file(f, cache=False) == hashlib.sha256(b"d" * 3001).hexdigest()
    with pytest.raises(MissingFileError):
        hash_file(tmp_path / "absent")


@pytest.fixture()
def disk_cache(tmp_path, monkeypatch):
    """A private cache directory, every file size remembered on disk, the memory cache emptied."""
    monkeypatch.setenv("CLEANROOM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hashing, "DISK_CACHE_MIN_BYTES", 0)
    monkeypatch.setattr(hashing, "_FILE_HASH_CACHE", {})
    return tmp_path / "cache" / "sha256"


def _count_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = hashing._read_sha256

    def spy(path):
        reads.append(path.name)
        return real(path)

    monkeypatch.setattr(hashing, "_read_sha256", spy)
    return reads


def test_hash_cache_hits_in_memory_and_on_disk_and_cache_false_rereads(tmp_path, disk_cache, monkeypatch) -> None:
    f = tmp_path / "shard.safetensors"
    f.write_bytes(b"w" * 5000)
    true = hashlib.sha256(b"w" * 5000).hexdigest()
    reads = _count_reads(monkeypatch)
    assert hash_file(f) == true and reads == ["shard.safetensors"]
    assert hash_file(f) == true and len(reads) == 1  # memory hit: the file was not read again
    monkeypatch.setattr(hashing, "_FILE_HASH_CACHE", {})
    assert hash_file(f) == true and len(reads) == 1  # disk hit (what a new process sees)
    (entry,) = disk_cache.iterdir()
    # A forged entry under the file's own key is returned as is: proof that the cache, not the file,
    # answered. cache=False reads the file and repairs the entry.
    forged = json.loads(entry.read_bytes()) | {"sha256": "0" * 64}
    entry.write_bytes(canonical_json(forged))
    monkeypatch.setattr(hashing, "_FILE_HASH_CACHE", {})
    assert hash_file(f) == "0" * 64 and len(reads) == 1
    assert hash_file(f, cache=False) == true and len(reads) == 2
    monkeypatch.setattr(hashing, "_FILE_HASH_CACHE", {})
    assert hash_file(f) == true and len(reads) == 2
    # a rewrite of another size gives the file a new key: never the old digest, and its entry
    # replaces the old version's (the cache does not grow with every edit of a file)
    f.write_bytes(b"v" * 5001)
    assert hash_file(f) == hashlib.sha256(b"v" * 5001).hexdigest() and len(reads) == 3
    (newer,) = disk_cache.iterdir()
    assert newer != entry and json.loads(newer.read_bytes())["key"][1] == 5001
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"o" * 10)
    hash_file(other)
    assert len(list(disk_cache.iterdir())) == 2  # another path keeps its own entry


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"key": [], "sha256": "ab"}', b'["a"]', b'{"sha256": 1}'])
def test_a_corrupt_or_foreign_cache_entry_is_a_miss(tmp_path, disk_cache, monkeypatch, garbage) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" * 100)
    hash_file(f)
    (entry,) = disk_cache.iterdir()
    entry.write_bytes(garbage)
    monkeypatch.setattr(hashing, "_FILE_HASH_CACHE", {})
    reads = _count_reads(monkeypatch)
    assert hash_file(f) == hashlib.sha256(b"GGUF" * 100).hexdigest() and reads == ["m.gguf"]
    assert json.loads(entry.read_bytes())["sha256"] == hashlib.sha256(b"GGUF" * 100).hexdigest()  # repaired
    assert not [p for p in disk_cache.iterdir() if p.name.endswith(".tmp")]


def test_an_unwritable_cache_never_fails_hashing(tmp_path, monkeypatch) -> None:
    (tmp_path / "not-a-dir").write_text("a file where the cache directory should be")
    monkeypatch.setenv("CLEANROOM_CACHE", str(tmp_path / "not-a-dir"))
    monkeypatch.setattr(hashing, "DISK_CACHE_MIN_BYTES", 0)
    f = tmp_path / "x.bin"
    f.write_bytes(b"x")
    assert hash_file(f) == sha256_hex(b"x")


def test_a_new_process_reads_the_disk_cache_instead_of_the_file(tmp_path, disk_cache) -> None:
    f = tmp_path / "model-00001-of-00002.safetensors"
    f.write_bytes(b"s" * 4096)
    digest = hash_file(f)
    code = (
        "import sys; from cleanroom import hashing as p; p.DISK_CACHE_MIN_BYTES = 0\n"
        "def refuse(path): raise SystemExit('re-read ' + str(path))\n"
        "p._read_sha256 = refuse; print(p.hash_file(sys.argv[1]))"
    )
    env = dict(os.environ, CLEANROOM_CACHE=str(disk_cache.parent))
    out = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == digest, out.stderr

"""cleanroom.provenance: canonical JSON and digests, the file-hash cache, secret redaction, the provenance record."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.errors import InputError, MissingFileError
from cleanroom.provenance import (
    ProvenanceRecord,
    canonical_json,
    capture_provenance,
    content_sha256,
    hash_file,
    model_file_digests,
    redact,
    sha256_hex,
)

SECRET = "hf_PlantedSecretTokenValue0123456789abcd"


def test_canonical_json_bytes_by_hand() -> None:
    """Sorted keys, no whitespace, UTF-8 kept (é = C3 A9), floats as repr (0.1, 1e-07), null."""
    got = canonical_json({"b": 1, "a": [0.1, "é", 1e-7], "c": None, "d": True})
    assert got == b'{"a":[0.1,"\xc3\xa9",1e-07],"b":1,"c":null,"d":true}'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"x": [float("-inf")]}, {1: "int key"}, {"p": object()}])
def test_canonical_json_rejects_non_json(bad: object) -> None:
    with pytest.raises(InputError):
        canonical_json(bad)


def test_sha256_and_content_digest_by_hand() -> None:
    """sha256("abc") is the FIPS 180-2 test vector; the provenance block is excluded from content_sha256."""
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert content_sha256({"x": 1, "provenance": {"record_id": "r"}}) == sha256_hex(b'{"x":1}')
    assert content_sha256({"x": 1}) != content_sha256({"x": 2})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_canonical_json_round_trips_and_is_a_fixed_point(value: object) -> None:
    data = canonical_json(value)
    assert json.loads(data) == value
    assert canonical_json(json.loads(data)) == data


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(), min_size=2, max_size=6))
def test_key_order_does_not_change_the_digest(d: dict[str, int]) -> None:
    assert content_sha256(dict(reversed(list(d.items())))) == content_sha256(d)


def test_hash_file_matches_hashlib_and_cache_tracks_changes(tmp_path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 3000)
    assert hash_file(f) == hashlib.sha256(b"a" * 3000).hexdigest()
    f.write_bytes(b"b" * 3001)  # size changes: the cache key changes
    assert hash_file(f) == hashlib.sha256(b"b" * 3001).hexdigest()
    f.write_bytes(b"c" * 3001)
    os.utime(f, ns=(1, 1))
    stale_key_value = hash_file(f)
    assert stale_key_value == hashlib.sha256(b"c" * 3001).hexdigest()
    f.write_bytes(b"d" * 3001)
    os.utime(f, ns=(1, 1))  # same size, same mtime: the cache cannot see it, cache=False must
    assert hash_file(f, cache=False) == hashlib.sha256(b"d" * 3001).hexdigest()
    with pytest.raises(MissingFileError):
        hash_file(tmp_path / "absent")


def test_redact_urls_tokens_keys_and_env_values() -> None:
    env = {"HF_TOKEN": SECRET, "MY_API_KEY": "s3cr3t-value", "TOKENIZERS_PARALLELISM": "false", "HOME": "/root"}
    out = redact(
        {
            "url": "https://user:tok@host.example/x",
            "hub_token": "anything",
            "pad_token": "<|endoftext|>",
            "max_new_tokens": 8,
            "note": f"key={SECRET} and s3cr3t-value and ghp_abcdefghijklmnopqrstuvwxyz0123",
            "nested": [{"password": "pw"}, "Bearer abc.def.ghi"],
        },
        environ=env,
    )
    assert out["url"] == "https://***@host.example/x"
    assert out["hub_token"] == "***"
    assert out["pad_token"] == "<|endoftext|>" and out["max_new_tokens"] == 8
    assert out["note"] == "key=*** and *** and ***"
    assert out["nested"] == [{"password": "***"}, "***"]


def test_capture_provenance_hashes_model_files_and_hides_secrets(tiny_base_model, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    rec = capture_provenance(
        "gen",
        run_id="r1",
        config={"model": str(tiny_base_model), "hub": f"https://me:{SECRET}@hf.co"},
        model_path=tiny_base_model,
        generation={"max_new_tokens": 4, "temperature": 0.0},
        seeds={"torch": 0},
        extra={"remote": "https://u:p@example.com/d", "auth_token": "xyz-secret"},
    )
    d = rec.to_dict()
    files = d["model"]["files"]
    assert {"config.json", "generation_config.json", "tokenizer.json", "model.safetensors"} <= set(files)
    weights = (tiny_base_model / "model.safetensors").read_bytes()
    assert files["model.safetensors"] == hashlib.sha256(weights).hexdigest()
    assert d["packages"]["transformers"] and d["packages"]["python"]
    assert d["git"]["commit"] and d["hardware"]["cpu_count"] >= 1
    assert d["extra"] == {"remote": "https://***@example.com/d", "auth_token": "***"}
    text = canonical_json(d).decode()
    assert SECRET not in text and "u:p@" not in text
    assert rec.sha256 == sha256_hex(canonical_json(d))
    assert ProvenanceRecord.from_dict(d) == rec
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.stage = "other"  # type: ignore[misc]


def test_capture_provenance_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(InputError):
        capture_provenance("bad/stage")
    with pytest.raises(MissingFileError):
        capture_provenance("gen", model_path=tmp_path / "not-downloaded")
    with pytest.raises(InputError):
        capture_provenance("gen", generation={"temperature": float("nan")})


def test_model_file_digests_skip_non_model_files(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"w1")
    (tmp_path / "README.md").write_text("docs")
    assert set(model_file_digests(tmp_path)) == {"config.json", "model-00001-of-00002.safetensors"}
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert model_file_digests(gguf) == {"m.gguf": sha256_hex(b"GGUF")}


def test_capture_provenance_does_not_import_torch() -> None:
    code = (
        "import sys; from cleanroom.provenance import capture_provenance; "
        "r = capture_provenance('s'); assert r.packages['torch'], r.packages; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

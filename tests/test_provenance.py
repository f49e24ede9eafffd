"""cleanroom.provenance: canonical JSON and digests, the file-hash cache, secret redaction, the provenance record (and the loader part stages put in it)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom import provenance
from cleanroom.errors import InputError, MissingFileError
from cleanroom.provenance import (
    ProvenanceRecord,
    canonical_json,
    capture_provenance,
    content_sha256,
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


def test_redact_urls_tokens_keys_and_env_values() -> None:
    env = {"HF_TOKEN": SECRET, "MY_API_KEY": "s3cr3t-value", "TOKENIZERS_PARALLELISM": "false", "HOME": "/root"}
    out = redact(
        {
            "url": "https://user:tok@host.example/x",
            "hub_token": "anything",
            "pad_token": "<|endoftext|>",
            "max_new_tokens": 8,
            "train_tokens_per_s": 1643.0,
            "high_tokens": 3,
            "API_TOKENS": "tok-a,tok-b",
            "github_tokens": ["ghx-1"],
            "note": f"key={SECRET} and s3cr3t-value and ghp_abcdefghijklmnopqrstuvwxyz0123",
            "nested": [{"password": "pw"}, "Bearer abc.def.ghi"],
        },
        environ=env,
    )
    assert out["url"] == "https://***@host.example/x"
    assert out["hub_token"] == "***"
    assert out["pad_token"] == "<|endoftext|>" and out["max_new_tokens"] == 8
    assert out["train_tokens_per_s"] == 1643.0 and out["high_tokens"] == 3  # counts and rates stay
    assert out["API_TOKENS"] == "***" and out["github_tokens"] == ["***"]  # credential lists do not
    assert out["note"] == "key=*** and *** and ***"
    assert out["nested"] == [{"password": "***"}, "***"]


def test_redact_closes_the_author_query_string_and_at_sign_gaps() -> None:
    env = {"AUTHORIZATION": "Basic cGxhbnRlZDpzZWNyZXQ=", "GIT_AUTHOR_NAME": "Jane Example", "HOME": "/root"}
    out = redact(
        {
            "Authorization": "Basic dXNlcjpwYXNzd29yZA==",
            "author": "Jane Doe",
            "authors": ["A. Author"],
            "author_token": "tok-planted-1",
            "q": "https://h.example/f.bin?x=1&token=T0k3n&sig=S1g&key=K3y&password=P4ss&access_token=A77#top",
            "azure": "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2030&sp=r&sig=AzureSig%3D",
            "s3": "https://bucket.s3.amazonaws.com/o?X-Amz-Credential=AKIDX&X-Amz-Signature=abc123&X-Amz-Expires=60",
            "fragment": "https://app.example/cb#access_token=Frag99&state=ok",
            "mirror": "https://u:p@ss@host.example/x",
            "vcs_ref": "git+https://github.com/org/repo@v1.0",
            "plain": "see key=value in the docs",
        },
        environ=env,
    )
    assert out["Authorization"] == "***"  # "author" no longer exempts Authorization
    assert out["author"] == "Jane Doe" and out["authors"] == ["A. Author"]
    assert out["author_token"] == "***"  # an exempt word does not shield a secret word beside it
    assert out["q"] == "https://h.example/f.bin?x=1&token=***&sig=***&key=***&password=***&access_token=***#top"
    assert out["azure"] == "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2030&sp=r&sig=***"
    assert out["s3"] == "https://bucket.s3.amazonaws.com/o?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"
    assert out["fragment"] == "https://app.example/cb#access_token=***&state=ok"
    assert out["mirror"] == "https://***@host.example/x"  # masked up to the last @ before the host
    assert out["vcs_ref"] == "git+https://github.com/org/repo@v1.0"  # an @ after the host is a ref: kept
    assert out["plain"] == "see key=value in the docs"  # only URLs have query strings
    assert provenance.secret_env_values(env) == {"AUTHORIZATION": "Basic cGxhbnRlZDpzZWNyZXQ="}


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


def test_a_stage_that_loads_no_weights_still_records_the_loaders_provenance(tmp_path, tiny_base_model) -> None:
    """The merge stage of a quantized run loads no model; its record still names loader, quantization, revision."""
    from cleanroom.artifacts import RunDir
    from cleanroom.config import load_config, spec_to_dict
    from cleanroom.loader import loader_version
    from cleanroom.pipeline.common import BudgetMeter, Context
    from cleanroom.pipeline.training import run_merge

    spec = load_config("tiny", ["model.quantization=nf4", "model.revision=0123abc"])
    ctx = Context(spec=spec, run=RunDir.create(tmp_path, "q", spec_to_dict(spec)), device="cpu",
                  budget=BudgetMeter(price_per_hour=0.0), progress=False)
    (ctx.run.path / "sft" / "adapter").mkdir(parents=True)  # the merge stage's input; never loaded here
    (ctx.run.path / "sft" / "adapter" / "adapter_config.json").write_text("{}")
    assert run_merge(ctx)["merged"] is False
    prov = json.loads((ctx.run.path / "merge" / "manifest.json").read_text())["provenance"]
    assert prov["loader_version"] == loader_version() and prov["quantization"] == "nf4"
    assert prov["model"]["revision"] == "0123abc" and prov["loader"]["weights_loaded"] is False
    assert prov["loader"]["files"]["tokenizer.json"] == prov["model"]["files"]["tokenizer.json"]

"""`cleanroom verify`, `trace` and `env`: exit codes 0/1/2, the first broken edge, listing ids, JSON output, CUDA from nvidia-smi."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from cleanroom.artifacts import RunDir
from cleanroom.cli import main
from cleanroom.provenance import capture_provenance


def _run(tmp_path):
    run = RunDir.create(tmp_path, "r1", {"seed": 0})
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r1")) as st:
        w = st.jsonl("g.jsonl")
        w.write({"text": "a"}, record_id="gen:1")
        w.write({"text": "b"}, record_id="gen:2", parents=[st.ref("g.jsonl", "gen:1")])
    run.finalize()
    return run


def test_verify_exit_codes_and_messages(tmp_path, capsys) -> None:
    run = _run(tmp_path)
    assert main(["verify", str(run.path)]) == 0
    assert "ok:" in capsys.readouterr().out
    path = run.path / "gen" / "g.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"b"', b'"c"'))
    assert main(["verify", str(run.path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("BROKEN: gen/g.jsonl line 2: content_sha256: expected ")
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    assert "not a cleanroom run directory" in capsys.readouterr().err


def test_verify_json(tmp_path, capsys) -> None:
    run = _run(tmp_path)
    (run.path / "gen" / "extra.txt").write_text("smuggled")
    assert main(["verify", str(run.path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["first_broken"]["file"] == "gen/extra.txt"


def test_trace_text_and_json(tmp_path, capsys) -> None:
    run = _run(tmp_path)
    assert main(["trace", str(run.path), "gen:2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("gen:2  [gen/g.jsonl line 2]") and out[1].strip().startswith("<- gen:1")
    assert main(["trace", str(run.path), "gen:2", "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["parents"][0]["record_id"] == "gen:1" and tree["parents"][0]["parents"] == []
    assert main(["trace", str(run.path), "gen:9"]) == 2


def test_env_json_has_versions_and_no_secrets(capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_ThisMustNeverBePrinted0123456789")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    assert main(["env", "--json"]) == 0
    raw = capsys.readouterr().out
    report = json.loads(raw)
    assert report["packages"]["transformers"] and report["git"]["commit"]
    assert report["env"]["PYTHONHASHSEED"] == "0"
    assert "HF_TOKEN" not in raw and "ThisMustNeverBePrinted" not in raw
    assert main(["env"]) == 0
    assert "transformers" in capsys.readouterr().out


def test_trace_without_an_id_lists_ids_and_the_hint_says_so(tmp_path, capsys) -> None:
    run = _run(tmp_path)
    assert main(["trace", str(run.path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["gen:1  [gen/g.jsonl line 1]", "gen:2  [gen/g.jsonl line 2]"]
    assert main(["trace", str(run.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[1] == {"record_id": "gen:2", "artifact": "gen/g.jsonl", "line": 2}
    assert main(["trace", str(run.path), "gen:3"]) == 2
    err = capsys.readouterr().err
    assert f"list its record ids with `cleanroom trace {run.path}`" in err and "(did you mean gen:" in err


def test_trace_of_a_malformed_line_is_one_line_exit_2(tmp_path, capsys) -> None:
    run = _run(tmp_path)
    path = run.path / "gen" / "g.jsonl"
    path.write_bytes(path.read_bytes().splitlines(True)[0] + b'{"text": "b", "provenance": {\n')
    assert main(["trace", str(run.path), "gen:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:2: not a cleanroom record" in err and "Traceback" not in err


def _fake_nvidia_smi(directory, body: str) -> None:
    exe = directory / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)


def test_env_reports_the_drivers_cuda_from_nvidia_smi_without_torch(tmp_path, capsys, monkeypatch) -> None:
    from cleanroom import environment

    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as in a fresh `cleanroom env` process
    _fake_nvidia_smi(tmp_path, 'if [ "$#" -gt 0 ]; then echo "NVIDIA H200, 550.54.15, 143771 MiB"; exit 0; fi\n'
                               'echo "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4     |"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    environment._nvidia_smi_cuda.cache_clear()
    try:
        assert main(["env", "--json"]) == 0
        hw = json.loads(capsys.readouterr().out)["hardware"]
        assert (hw["cuda"], hw["cuda_source"]) == ("12.4", "nvidia-smi") and hw["gpus"][0]["name"] == "NVIDIA H200"
        assert main(["env"]) == 0
        assert "cuda          12.4 (driver, from nvidia-smi)" in capsys.readouterr().out
        _fake_nvidia_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9\n")  # a broken driver: no CUDA, no failure
        environment._nvidia_smi_cuda.cache_clear()
        assert main(["env", "--json"]) == 0
        hw = json.loads(capsys.readouterr().out)["hardware"]
        assert (hw["cuda"], hw["cuda_source"], hw["gpus"]) == (None, None, [])
    finally:
        environment._nvidia_smi_cuda.cache_clear()


def test_trace_of_an_edited_record_is_unverified_and_exits_1(tmp_path, capsys) -> None:
    """One response byte edited: `verify` says BROKEN, and `trace` no longer prints the ancestry as sound:
    it marks it UNVERIFIED and names the first broken edge, the one `verify` names."""
    run = _run(tmp_path)
    assert main(["trace", str(run.path), "gen:2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "checked: 2 records in 1 record files match their digests and manifests, 1 parent links"
    path = run.path / "gen" / "g.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"a"', b'"x"'))
    assert main(["verify", str(run.path)]) == 1
    verify_first = capsys.readouterr().out.splitlines()[0]
    assert verify_first.startswith("BROKEN: gen/g.jsonl line 1: content_sha256: expected ")
    assert main(["trace", str(run.path), "gen:2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "UNVERIFIED ancestry of gen:2: the records it was read from do not match their digests"
    assert out[1].startswith("gen:2  [gen/g.jsonl line 2]") and out[2].strip().startswith("<- gen:1")
    assert out[-1].startswith("BROKEN: gen/g.jsonl:1: content_sha256: expected ")
    assert out[-1].endswith(f"run `cleanroom verify {run.path}` for every broken edge")
    assert main(["trace", str(run.path), "gen:2", "--json"]) == 1
    tree = json.loads(capsys.readouterr().out)
    assert tree["record_id"] == "gen:2" and tree["verification"]["status"] == "broken"
    assert tree["verification"]["first_broken"]["line"] == 1


def test_trace_checks_the_manifest_and_the_parent_links_it_follows(tmp_path, capsys) -> None:
    """Records rewritten consistently (content digest and chain recomputed) still differ from the file digest
    in the manifest and the digest the child's parent link recorded; an in-progress run (no attestation) is
    checked without one."""
    from cleanroom.artifacts import pretty_json
    from cleanroom.artifacts.records import CHAIN_SEED, chain_step
    from cleanroom.provenance import canonical_json, content_sha256, sha256_hex

    run = RunDir.create(tmp_path, "r2", {"seed": 0})
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r2")) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:1")
    with run.stage("use", provenance=capture_provenance("use", run_id="r2")) as st:
        st.jsonl("u.jsonl").write({"text": "b"}, record_id="use:1", parents=[run.ref("gen/g.jsonl", "gen:1")])
    assert main(["trace", str(run.path), "use:1"]) == 1  # not finalized: no attestation, checked, unfinished
    assert capsys.readouterr().out.startswith(f"unfinished: {run.path}: stage preflight not done")
    path = run.path / "gen" / "g.jsonl"
    record = json.loads(path.read_bytes())
    record["text"] = "z"
    record["provenance"]["content_sha256"] = content_sha256(record)
    record["provenance"]["chain"] = chain_step(CHAIN_SEED, record)
    path.write_bytes(canonical_json(record) + b"\n")
    assert main(["trace", str(run.path), "use:1"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("BROKEN: gen/g.jsonl: chain root in manifest: ")
    mpath = run.path / "gen" / "manifest.json"  # the manifest rewritten to match: only the parent link is left
    manifest = json.loads(mpath.read_bytes())
    manifest["records"]["g.jsonl"]["chain_root"] = record["provenance"]["chain"]
    manifest["files"]["g.jsonl"]["sha256"] = sha256_hex(path.read_bytes())
    mpath.write_bytes(pretty_json(manifest))
    assert main(["trace", str(run.path), "use:1"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("BROKEN: use/u.jsonl:1: parent 0 of use:1: sha256 of gen/g.jsonl: expected "), out


def test_trace_of_an_unfinished_run_says_unfinished_as_verify_does(tmp_path, capsys) -> None:
    """A run killed inside a stage: `verify` says it is unfinished (exit 1). `trace` printed the ancestry with
    its ok-style `checked:` line and exit 0, a pass on a run with no attestation to check against. It now
    prints verify's own `unfinished:` line above the tree and exits 1; --json says status unfinished. A broken
    record still reads BROKEN first; the finished run traces as checked, exit 0."""
    run = RunDir.create(tmp_path, "r6", {"seed": 0})
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r6")) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:1")
        st.jsonl("g.jsonl").write({"text": "b"}, record_id="gen:2", parents=[st.ref("g.jsonl", "gen:1")])
    with pytest.raises(RuntimeError), run.stage("use", provenance=capture_provenance("use", run_id="r6")):
        raise RuntimeError("killed")
    assert main(["verify", str(run.path)]) == 1
    verify_line = capsys.readouterr().out.splitlines()
    assert verify_line == [f"unfinished: {run.path}: stage use not done; verify checks finished runs. Continue it "
                           "with the same `cleanroom run` command plus --resume"]
    assert main(["trace", str(run.path), "gen:2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == verify_line[0] and out[1].startswith("gen:2  [gen/g.jsonl line 2]"), out
    assert not any(line.startswith(("checked:", "ok:")) for line in out), out
    assert main(["trace", str(run.path), "gen:2", "--json"]) == 1
    verification = json.loads(capsys.readouterr().out)["verification"]
    assert (verification["status"], verification["ok"], verification["unfinished"]) == ("unfinished", False, "use")
    path = run.path / "gen" / "g.jsonl"
    saved = path.read_bytes()
    path.write_bytes(saved.replace(b'"a"', b'"x"'))
    assert main(["trace", str(run.path), "gen:2", "--json"]) == 1
    verification = json.loads(capsys.readouterr().out)["verification"]
    assert (verification["status"], verification["unfinished"]) == ("broken", "use")
    assert main(["trace", str(run.path), "gen:2"]) == 1
    assert capsys.readouterr().out.startswith("UNVERIFIED ancestry of gen:2")
    path.write_bytes(saved)
    shutil.rmtree(run.path / "use")
    run.finalize()
    assert main(["trace", str(run.path), "gen:2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("checked: 2 records in 1 record files")


def test_trace_of_a_record_whose_parent_is_gone_is_unverified(tmp_path, capsys) -> None:
    """The parent's line deleted from its record file: the link no longer resolves to a record, so the tree
    shows it as an artifact; that file is a record file of the run, so trace checks it and the link is broken
    (it was reported as verified, with the file among the links not re-hashed)."""
    run = RunDir.create(tmp_path, "r4", {"seed": 0})
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r4")) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:1")
        st.jsonl("g.jsonl").write({"text": "b"}, record_id="gen:2")
    with run.stage("use", provenance=capture_provenance("use", run_id="r4")) as st:
        st.jsonl("u.jsonl").write({"text": "c"}, record_id="use:1", parents=[run.ref("gen/g.jsonl", "gen:1")])
    run.finalize()
    assert main(["trace", str(run.path), "use:1"]) == 0
    capsys.readouterr()
    path = run.path / "gen" / "g.jsonl"
    path.write_bytes(path.read_bytes().splitlines(True)[1])
    assert main(["trace", str(run.path), "use:1"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("UNVERIFIED ancestry of use:1") and "artifact: gen/g.jsonl record gen:1" in out[2], out
    assert out[-1].startswith("BROKEN: gen/g.jsonl"), out


@pytest.mark.parametrize("cut", ["manifest deleted", "record file dropped from the manifest", "stage deleted"])
def test_trace_of_an_edited_parent_whose_stage_manifest_was_cut_is_unverified(tmp_path, capsys, cut) -> None:
    """The parent record edited and its stage's manifest deleted, or rewritten without that record file: the
    parent is no longer indexed as a record, so the link showed as an artifact "outside the run's record files"
    and trace exited 0; the stage's manifest is now checked against the attestation."""
    from cleanroom.artifacts import pretty_json

    run = RunDir.create(tmp_path, "r5", {"seed": 0})
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r5")) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:1")
    with run.stage("use", provenance=capture_provenance("use", run_id="r5")) as st:
        st.jsonl("u.jsonl").write({"text": "c"}, record_id="use:1", parents=[run.ref("gen/g.jsonl", "gen:1")])
    run.finalize()
    mpath = run.path / "gen" / "manifest.json"
    if cut == "stage deleted":  # the parent's whole stage directory removed: the link's target is gone
        shutil.rmtree(run.path / "gen")
        assert main(["trace", str(run.path), "use:1"]) == 1
        out = capsys.readouterr().out.splitlines()
        assert out[-1].startswith("BROKEN: use/u.jsonl:1: parent 0 of use:1: artifact exists"), out
        return
    if cut == "manifest deleted":
        mpath.unlink()
    else:
        manifest = json.loads(mpath.read_bytes())
        del manifest["records"]["g.jsonl"]
        mpath.write_bytes(pretty_json(manifest))
    path = run.path / "gen" / "g.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"a"', b'"X"'))
    assert main(["trace", str(run.path), "use:1"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("UNVERIFIED ancestry of use:1") and out[-1].startswith("BROKEN: gen/manifest.json"), out


def test_verify_names_a_deleted_stage_directory_first(tmp_path, capsys) -> None:
    """Deleting a whole stage of a finished run was reported as an attestation field ("finished_at" or
    "expected (absent), found {...}"); the first broken edge is the stage the attestation lists and disk lacks."""
    run = RunDir.create(tmp_path, "r3", {"seed": 0})
    for stage in ("eval", "report"):
        with run.stage(stage, provenance=capture_provenance(stage, run_id="r3")) as st:
            st.jsonl("x.jsonl").write({"text": stage}, record_id=f"{stage}:1")
    run.finalize()
    for stage in ("eval", "report"):
        saved = tmp_path / f"saved-{stage}"
        shutil.move(run.path / stage, saved)
        assert main(["verify", str(run.path)]) == 1
        out = capsys.readouterr().out.splitlines()
        assert out[0] == (f"BROKEN: {stage}/: stage listed in attestation.json exists: expected a finished stage, "
                          "found directory missing"), out
        shutil.move(saved, run.path / stage)
    assert main(["verify", str(run.path)]) == 0


def test_trace_says_which_link_targets_it_did_not_rehash(tmp_path, tiny_base_model, capsys) -> None:
    """A parent link to a file outside the run's record files (here an external file) and the base model files
    are not re-hashed by trace: the output says so instead of counting them as checked; `verify` checks them."""
    external = tmp_path / "weights.bin"
    external.write_bytes(b"w")
    run = RunDir.create(tmp_path, "r4", {"seed": 0})
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r4")) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:1", parents=[run.ref(str(external), None)])
    run.finalize()
    assert main(["trace", str(run.path), "gen:1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == "checked: 1 records in 1 record files match their digests and manifests, 0 parent links"
    assert out[-1] == ("not re-hashed by trace: 1 parent link target outside the run's record files (weights, "
                       f"external files); `cleanroom verify {run.path}` checks them")
    external.write_bytes(b"x")  # trace did not read it, and does not claim it; verify reads it
    assert main(["verify", str(run.path)]) == 1
    capsys.readouterr()
    run = RunDir.create(tmp_path, "r5", {"seed": 0})
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r5", model_path=tiny_base_model)) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:1")
    run.finalize()
    assert main(["trace", str(run.path), "gen:1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "not re-hashed by trace: the base model files shown (their digests as recorded); "
        f"`cleanroom verify {run.path}` checks them")


def test_every_kind_of_run_has_its_continue_advice() -> None:
    """`unfinished:` names how to continue each kind of run; a kind added without its advice would fall back to
    "the command that made it"."""
    from cleanroom.artifacts.layout import STAGE_ORDERS
    from cleanroom.cli.runs import _CONTINUE

    assert set(_CONTINUE) == set(STAGE_ORDERS)

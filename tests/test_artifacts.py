"""cleanroom.artifacts / cleanroom.verify: record blocks, chains, resume, manifests, attestation, verify and trace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cleanroom import artifacts, hashing
from cleanroom.artifacts import (
    CHAIN_SEED,
    RunDir,
    build_attestation,
    read_records,
    records,
    write_records,
)
from cleanroom.cli import main
from cleanroom.errors import ConfigError, InputError, MissingFileError, ProvenanceError
from cleanroom.provenance import canonical_json, capture_provenance, content_sha256, hash_file, sha256_hex
from cleanroom.verify import trace_record, verify_run


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_a_finished_stage_gives_every_file_it_lists_the_mode_open_gives(tmp_path, mask) -> None:
    """safetensors.save_file writes adapter weights 0600 and RecordWriter creates record files 0644 whatever
    the umask: finishing the stage gives each listed file ``0666 & ~umask`` (0644 under 0022, 0664 under 0002),
    so another user can `cleanroom verify` the run."""
    import os
    import stat

    old = os.umask(mask)
    try:
        run = RunDir.create(tmp_path, "r1", CONFIG)
        with run.stage("sft", provenance=capture_provenance("sft", run_id="r1", config=CONFIG)) as st:
            st.jsonl("examples.jsonl").write({"n": 1})
            (st.dir / "adapter").mkdir()
            fd = os.open(st.dir / "adapter" / "adapter_model.safetensors", os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"weights")
            os.close(fd)
            (st.dir / "notes.txt").write_text("x")
            (st.dir / "notes.txt").chmod(0o600)
    finally:
        os.umask(old)
    manifest = json.loads((run.path / "sft" / "manifest.json").read_text())
    modes = {f: stat.S_IMODE((run.path / "sft" / f).stat().st_mode) for f in manifest["files"]}
    assert {"adapter/adapter_model.safetensors", "examples.jsonl", "notes.txt", "stage.json"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o666 & ~mask), {f: oct(m) for f, m in modes.items()}


CONFIG = {"model": {"path": "tiny"}, "seed": 0, "sft": {"lr": 0.0002}}


def _make_run(root: Path) -> tuple[RunDir, list[str], list[str]]:
    run = RunDir.create(root, "r1", CONFIG)
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r1", config=CONFIG)) as st:
        w = st.jsonl("generations.jsonl")
        gen_ids = [w.write({"prompt": f"p{i}", "text": f"t{i}"}, record_id=f"gen:{i}") for i in range(4)]
    sft_prov = capture_provenance("sft", run_id="r1", config=CONFIG)
    with run.stage("sft", provenance=sft_prov, inputs=["gen/generations.jsonl"]) as st:
        w = st.jsonl("examples.jsonl")
        ex_ids = [w.write({"n": i}, parents=[run.ref("gen/generations.jsonl", g)]) for i, g in enumerate(gen_ids)]
        (st.dir / "adapter").mkdir()
        (st.dir / "adapter" / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 4)
    run.finalize()
    return run, gen_ids, ex_ids


def test_record_block_and_chain_by_hand(tmp_path) -> None:
    run, gen_ids, _ = _make_run(tmp_path)
    lines = (run.path / "gen" / "generations.jsonl").read_bytes().splitlines()
    first = json.loads(lines[0])
    block = first["provenance"]
    assert block["record_id"] == "gen:0"
    assert block["content_sha256"] == sha256_hex(b'{"prompt":"p0","text":"t0"}')
    assert block["parents"] == []
    manifest = json.loads((run.path / "gen" / "manifest.json").read_text())
    assert block["producer"] == {
        "stage": "gen",
        "run_id": "r1",
        "config_sha256": sha256_hex(canonical_json(CONFIG)),
        "provenance_sha256": manifest["provenance_sha256"],
    }
    # chain_1 = sha256(seed_hex || canonical record without the chain key); the line is canonical JSON.
    body = {**first, "provenance": {k: v for k, v in block.items() if k != "chain"}}
    assert block["chain"] == sha256_hex(CHAIN_SEED.encode() + canonical_json(body))
    assert lines[0] == canonical_json(first)
    last = json.loads(lines[-1])["provenance"]["chain"]
    assert manifest["records"]["generations.jsonl"] == {"count": 4, "chain_root": last}
    assert manifest["files"]["generations.jsonl"]["sha256"] == hash_file(run.path / "gen" / "generations.jsonl")


def test_manifest_and_attestation_shape(tmp_path) -> None:
    run, _, _ = _make_run(tmp_path)
    sft = json.loads((run.path / "sft" / "manifest.json").read_text())
    assert set(sft["files"]) == {"examples.jsonl", "stage.json", "adapter/adapter_model.safetensors"}
    assert sft["inputs"] == [
        {"path": "gen/generations.jsonl", "sha256": hash_file(run.path / "gen" / "generations.jsonl")}
    ]
    att = json.loads((run.path / "attestation.json").read_text())
    assert att["_type"] == "https://in-toto.io/Statement/v1"
    names = {s["name"]: s["digest"]["sha256"] for s in att["subject"]}
    assert names["sft/adapter/adapter_model.safetensors"] == hash_file(
        run.path / "sft" / "adapter" / "adapter_model.safetensors"
    )
    assert names["gen/manifest.json"] == hash_file(run.path / "gen" / "manifest.json")
    assert att["predicate"]["parameters"] == CONFIG
    assert any(d["name"] == "cleanroom-code" for d in att["predicate"]["dependencies"])
    assert build_attestation(run.path) == att


def test_verify_passes_and_trace_walks_to_the_root(tmp_path) -> None:
    run, gen_ids, ex_ids = _make_run(tmp_path)
    report = verify_run(run.path)
    assert report.ok and report.status == "ok" and report.unchecked == (), report.errors
    assert report.counts == {"stages": 2, "files": 5, "records": 8, "parents": 4, "parents_unchecked": 0,
                             "inputs": 1, "inputs_unchecked": 0, "model_files": 0, "model_files_unchecked": 0}
    node = trace_record(run.path, ex_ids[2])
    assert (node.artifact, node.line) == ("sft/examples.jsonl", 3)
    assert [(p.record_id, p.artifact, p.line) for p in node.parents] == [("gen:2", "gen/generations.jsonl", 3)]
    assert node.parents[0].parents == ()
    with pytest.raises(InputError):
        trace_record(run.path, "no-such-id")


def _edit(path: Path, fn) -> None:
    path.write_bytes(fn(path.read_bytes()))


@pytest.mark.parametrize(
    ("target", "edit", "file", "line", "check"),
    [
        ("gen/generations.jsonl", lambda b: b.replace(b'"t2"', b'"T2"'), "gen/generations.jsonl", 3, "content_sha256"),
        ("gen/generations.jsonl", lambda b: b"".join(reversed(b.splitlines(True))), "gen/generations.jsonl", 1, "chain"),
        ("sft/examples.jsonl", lambda b: b"".join(b.splitlines(True)[1:]), "sft/examples.jsonl", 1, "chain"),
        ("sft/examples.jsonl", lambda b: b"".join(b.splitlines(True)[:-1]), "sft/examples.jsonl", None, "count"),
        ("sft/adapter/adapter_model.safetensors", lambda b: b[::-1], "sft/adapter/adapter_model.safetensors", None, "sha256"),
        ("gen/manifest.json", lambda b: b.replace(b'"count": 4', b'"count": 5'), "gen/manifest.json", None, "attestation"),
        ("attestation.json", lambda b: b.replace(b'"seed": 0', b'"seed": 1'), "attestation.json", None, "parameters"),
        ("config.resolved.yaml", lambda b: b.replace(b"seed: 0", b"seed: 1"), "config.resolved.yaml", None, "attestation"),
    ],
)
def test_verify_names_the_first_broken_edge(tmp_path, target, edit, file, line, check) -> None:
    run, _, _ = _make_run(tmp_path)
    _edit(run.path / target, edit)
    report = verify_run(run.path)
    assert not report.ok
    first = report.first
    assert (first.file, first.line) == (file, line), first.message
    assert check in first.check, first.message


def test_verify_catches_a_dangling_parent(tmp_path) -> None:
    run = RunDir.create(tmp_path, "r1", CONFIG)
    with run.stage("a", provenance=capture_provenance("a", run_id="r1")) as st:
        w = st.jsonl("x.jsonl")
        w.write({"v": 1}, record_id="a:1")
        w.write({"v": 2}, parents=[st.ref("x.jsonl", "a:404")])
    run.finalize()
    first = verify_run(run.path).first
    assert first is not None and "record_id in a/x.jsonl" in first.check and first.line == 2


def test_verify_refuses_a_non_run_and_an_unfinished_stage(tmp_path) -> None:
    with pytest.raises(MissingFileError):
        verify_run(tmp_path)
    run = RunDir.create(tmp_path, "r1", CONFIG)
    with pytest.raises(RuntimeError):
        with run.stage("a", provenance=capture_provenance("a")) as st:
            st.jsonl("x.jsonl").write({"v": 1})
            raise RuntimeError("crash mid-stage")
    assert not (run.path / "a" / "manifest.json").exists()
    with pytest.raises(ProvenanceError):
        run.finalize()


def test_resume_truncates_a_torn_line_and_skips_existing_ids(tmp_path) -> None:
    run = RunDir.create(tmp_path, "r1", CONFIG)
    prov = capture_provenance("a", run_id="r1")
    with pytest.raises(KeyError):
        with run.stage("a", provenance=prov) as st:
            w = st.jsonl("x.jsonl")
            for i in range(3):
                w.write({"v": i}, record_id=f"a:{i}")
            raise KeyError("killed")
    path = run.path / "a" / "x.jsonl"
    with open(path, "ab") as fh:
        fh.write(b'{"v":3,"provenance":{"rec')  # the torn half of a record
    with run.stage("a", provenance=capture_provenance("a", run_id="r1", extra={"attempt": 2})) as st:
        w = st.jsonl("x.jsonl")
        assert w.truncated_bytes == len(b'{"v":3,"provenance":{"rec') and w.count == 3
        for i in range(5):
            w.write({"v": i}, record_id=f"a:{i}")
    run.finalize()
    ids = [r["provenance"]["record_id"] for r in read_records(path)]
    assert ids == [f"a:{i}" for i in range(5)]
    assert len(json.loads((run.path / "a" / "stage.json").read_text())["attempts"]) == 2
    assert verify_run(run.path).ok


def test_rundir_create_is_resumable_but_rejects_another_config(tmp_path) -> None:
    run = RunDir.create(tmp_path, "r1", CONFIG)
    assert RunDir.create(tmp_path, "r1", dict(CONFIG)).config_sha256 == run.config_sha256
    with pytest.raises(ConfigError):
        RunDir.create(tmp_path, "r1", {**CONFIG, "seed": 1})
    with pytest.raises(ConfigError):
        RunDir.create(tmp_path, "../escape", CONFIG)
    with pytest.raises(ProvenanceError):
        run.stage("b", provenance=capture_provenance("a"))


def test_writer_rejects_bad_payloads_and_parents(tmp_path) -> None:
    run = RunDir.create(tmp_path, "r1", CONFIG)
    with run.stage("a", provenance=capture_provenance("a")) as st:
        w = st.jsonl("x.jsonl")
        with pytest.raises(InputError):
            w.write({"provenance": {}})
        with pytest.raises(InputError):
            w.write({"v": 1}, parents=[{"artifact": "a/x.jsonl"}])
        with pytest.raises(InputError):
            w.write({"v": float("nan")})
        with pytest.raises(InputError):
            st.jsonl("../escape.jsonl")


def test_write_records_and_read_records(tmp_path) -> None:
    path = tmp_path / "verdicts.jsonl"
    producer = {"stage": "eval", "run_id": None, "config_sha256": None, "provenance_sha256": None}
    write_records(
        path,
        [{"key": 1, "ok": True}, {"key": 2, "ok": False}],
        producer=producer,
        parents_of=lambda p: [{"artifact": "/data/prompts.jsonl", "sha256": None, "record_id": f"p:{p['key']}"}],
        record_id_of=lambda p: f"eval/base:{p['key']}",
    )
    recs = read_records(path)
    assert [r["provenance"]["record_id"] for r in recs] == ["eval/base:1", "eval/base:2"]
    assert recs[1]["provenance"]["content_sha256"] == content_sha256({"key": 2, "ok": False})
    assert not list(tmp_path.glob(".*tmp"))
    with pytest.raises(InputError):
        write_records(path, [{"k": 1}, {"k": 1}], producer=producer)
    path.write_text('{"ok": 1}\n{"broken"\n')
    with pytest.raises(InputError, match="line 2"):
        read_records(path)


def _model_dir(root: Path) -> Path:
    model = root / "base-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2"}')
    (model / "tokenizer.json").write_text('{"model": {"vocab": {"a": 0}}}')
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    return model


def _run_on_model(root: Path, model: Path) -> RunDir:
    run = RunDir.create(root, "r1", CONFIG)
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r1", model_path=model)) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:1")
    with run.stage("eval", provenance=capture_provenance("eval", run_id="r1", model_path=model)) as st:
        st.jsonl("v.jsonl").write({"ok": True}, parents=[run.ref("gen/g.jsonl", "gen:1")], record_id="eval:1")
    run.finalize()
    return run


def test_verify_rehashes_the_base_model_files_in_provenance(tmp_path) -> None:
    model = _model_dir(tmp_path)
    run = _run_on_model(tmp_path / "runs", model)
    report = verify_run(run.path)
    assert report.ok and report.counts["model_files"] == 3 and report.counts["model_files_unchecked"] == 0
    tok = model / "tokenizer.json"
    tok.write_text('{"model": {"vocab": {"a": 0, "<|im_start|>": 1}}}')  # an edited tokenizer
    first = verify_run(run.path).first
    assert first is not None and first.file == str(tok.resolve()) and "base model file" in first.check
    assert first.expected == sha256_hex(b'{"model": {"vocab": {"a": 0}}}') and first.found == hash_file(tok)
    tok.unlink()  # the model directory is here but lacks a recorded file: broken, not unchecked
    report = verify_run(run.path)
    first = report.first
    assert first is not None and first.file == str(tok.resolve()) and first.found == "missing"
    assert report.status == "broken" and report.unchecked == ()


def test_rehash_models_bypasses_the_hash_cache(tmp_path, monkeypatch) -> None:
    model = _model_dir(tmp_path)
    run = _run_on_model(tmp_path / "runs", model)
    cfg = model / "config.json"
    recorded = hash_file(cfg)
    cfg.write_text('{"model_type": "llama"}')
    # a stale entry under the edited file's key (what a rewrite within one timestamp tick could leave)
    monkeypatch.setattr(hashing, "_FILE_HASH_CACHE", {hashing._file_key(cfg.resolve()): recorded})
    assert verify_run(run.path).ok  # the cache answered for the model file
    first = verify_run(run.path, rehash_models=True).first
    assert first is not None and first.file == str(cfg.resolve()) and first.found == sha256_hex(cfg.read_bytes())


def test_a_model_that_is_not_here_is_a_check_not_run_not_a_pass(tmp_path, capsys) -> None:
    """The run copied to a machine without its base model: nothing is broken, yet the report is partial (not
    ok), names the 3 files not checked, the path looked for and both manifests, and the command exits 1."""
    model = _model_dir(tmp_path)
    run = _run_on_model(tmp_path / "runs", model)
    model.rename(tmp_path / "moved")
    report = verify_run(run.path)
    assert report.errors == () and not report.ok and report.status == "partial" and report.not_run == 3
    assert report.counts["model_files"] == 0 and report.counts["model_files_unchecked"] == 3
    (group,) = report.unchecked
    assert (group.kind, group.path, group.recorded_in, group.count) == (
        "model", str(model.resolve()), ("eval/manifest.json", "gen/manifest.json"), 3)
    assert main(["verify", str(run.path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["ok"], out["checks_not_run"]) == ("partial", False, 3)
    assert out["unchecked"] == [group.to_dict()] and out["counts"]["model_files_unchecked"] == 3
    assert main(["verify", str(run.path)]) == 1
    first, *rest = capsys.readouterr().out.splitlines()
    assert first.startswith(f"PARTIAL: {run.path}: 3 checks did not run (3 base model files not present")
    assert f"unchecked: {group.message}" in rest


def test_a_link_into_another_stage_carries_the_files_digest(tmp_path, monkeypatch) -> None:
    run, _, _ = _make_run(tmp_path)
    refs = [r["provenance"]["parents"][0] for r in read_records(run.path / "sft" / "examples.jsonl")]
    assert {p["sha256"] for p in refs} == {hash_file(run.path / "gen" / "generations.jsonl")}
    prov = capture_provenance("x", run_id="r1", config=CONFIG)
    with pytest.raises(InputError, match="without its sha256"):
        with run.stage("x", provenance=prov) as st:
            st.jsonl("x.jsonl").write({"v": 1}, parents=[{"artifact": "gen/generations.jsonl", "sha256": None,
                                                         "record_id": "gen:0"}])
    # a run written before links carried digests: verify names the link
    check = records._check_parents
    monkeypatch.setattr(records, "_check_parents", lambda parents, where, stage=None: check(parents, where))
    with run.stage("x", provenance=prov) as st:
        st.jsonl("x.jsonl").write({"v": 1}, parents=[{"artifact": "gen/generations.jsonl", "sha256": None,
                                                     "record_id": "gen:0"}])
    run.finalize()
    first = verify_run(run.path).first
    assert first is not None and (first.file, first.line) == ("x/x.jsonl", 1)
    assert "sha256 of gen/generations.jsonl recorded in the link" in first.check and first.found is None


def test_trace_reports_a_malformed_record_file_as_an_input_error(tmp_path) -> None:
    run, gen_ids, ex_ids = _make_run(tmp_path)
    path = run.path / "gen" / "generations.jsonl"
    lines = path.read_bytes().splitlines(True)
    path.write_bytes(lines[0] + b'{"prompt": "p1", "provenance": \n' + b"".join(lines[2:]))
    with pytest.raises(InputError, match=rf"{path}:2: not a cleanroom record"):
        trace_record(run.path, ex_ids[0])


def test_trace_survives_a_parent_without_an_artifact_and_suggests_ids(tmp_path) -> None:
    run, gen_ids, ex_ids = _make_run(tmp_path)
    path = run.path / "sft" / "examples.jsonl"
    rec = read_records(path)[1]
    rec["provenance"]["parents"] = [{"artifact": None, "sha256": None, "record_id": "gen:1"}, "not a dict"]
    path.write_bytes(b"".join(canonical_json(r) + b"\n" for r in [read_records(path)[0], rec]))
    node = trace_record(run.path, ex_ids[1])
    assert [(p.kind, p.artifact, p.record_id) for p in node.parents] == [
        ("missing", "(no artifact named)", "gen:1"), ("missing", "(no artifact named)", None)]
    with pytest.raises(InputError, match=r"did you mean gen:1.*`cleanroom trace "):
        trace_record(run.path, "gen:1x")


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_written_files_get_the_umask_not_the_temp_files_private_mode(tmp_path, mask) -> None:
    """mkstemp makes 0600 files; renamed into place as they were, a collaborator could not read a run."""
    import os
    import stat

    old = os.umask(mask)
    try:
        run, _, _ = _make_run(tmp_path)
        target = tmp_path / "plain.json"
        artifacts.atomic_write_bytes(target, b"{}\n")
    finally:
        os.umask(old)
    want = 0o666 & ~mask
    for path in (target, run.path / "run.json", run.path / "attestation.json", run.path / "sft" / "manifest.json",
                 run.path / "config.resolved.yaml"):
        assert stat.S_IMODE(path.stat().st_mode) == want, (path, oct(path.stat().st_mode))


def test_verify_an_unfinished_run_names_the_stage_not_done(tmp_path, capsys) -> None:
    """A run killed inside stage 'a' is unfinished (stage a), not a broken edge; one stopped between stages
    names the first Stage 1 stage without a manifest; a finished run that lost its attestation stays BROKEN."""
    from cleanroom.artifacts.layout import STAGE1_ORDER

    run = RunDir.create(tmp_path, "r1", CONFIG)
    with pytest.raises(RuntimeError):
        with run.stage("a", provenance=capture_provenance("a")):
            raise RuntimeError("killed")
    report = verify_run(run.path)
    assert (report.ok, report.unfinished, report.errors) == (False, "a", ())
    assert main(["verify", str(run.path)]) == 1
    out = capsys.readouterr().out
    assert "stage a not done" in out and "--resume" in out and "BROKEN" not in out
    shutil.rmtree(run.path / "a")
    with run.stage("preflight", provenance=capture_provenance("preflight")) as st:
        st.jsonl("x.jsonl").write({"v": 1})
    assert verify_run(run.path).unfinished == "baseline" == STAGE1_ORDER[1]
    done, _, _ = _make_run(tmp_path / "done")
    (done.path / "report").mkdir()
    (done.path / "report" / "manifest.json").write_text("{}")
    (done.path / "attestation.json").unlink()
    report = verify_run(done.path)
    assert report.unfinished is None and not report.ok and report.first.file == "attestation.json"


def test_verify_and_trace_give_one_answer_to_whether_a_run_finished(tmp_path) -> None:
    """``unfinished_stage`` is the one test of "did this run finish?": verify and trace give its answer in every
    state — stopped between stages (the first Stage 1 stage without a manifest), killed inside a stage (that
    stage), finalized (None), finished but its attestation deleted (None: a broken edge, never unfinished).
    Trace kept its own copy of the test and never reported a run unfinished."""
    from cleanroom.ancestry import trace_checked
    from cleanroom.artifacts.layout import unfinished_stage

    run = RunDir.create(tmp_path, "r1", CONFIG)
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r1", config=CONFIG)) as st:
        st.jsonl("g.jsonl").write({"v": 1}, record_id="gen:1")

    def answers() -> tuple[str | None, ...]:
        return (unfinished_stage(run.path), verify_run(run.path).unfinished,
                trace_checked(run.path, "gen:1").report.unfinished)

    assert answers() == ("preflight",) * 3
    with pytest.raises(RuntimeError), run.stage("sft", provenance=capture_provenance("sft", run_id="r1")):
        raise RuntimeError("killed")
    assert answers() == ("sft",) * 3
    shutil.rmtree(run.path / "sft")
    run.finalize()
    assert answers() == (None,) * 3
    (run.path / "attestation.json").unlink()
    (run.path / "report").mkdir()
    (run.path / "report" / "manifest.json").write_text("{}")
    assert answers() == (None,) * 3
    assert verify_run(run.path).first.file == trace_checked(run.path, "gen:1").report.first.file == "attestation.json"


def test_verify_stage_order_is_the_pipelines(tmp_path) -> None:
    from cleanroom.artifacts.layout import STAGE1_ORDER
    from cleanroom.pipeline import stage1

    assert STAGE1_ORDER == (*(name for name, _ in stage1.STAGES), "report")


EVAL_CONFIG = {"command": "eval run", "model": "tiny", "n_prompts": 1}


def test_an_eval_run_is_finished_by_its_eval_stage(tmp_path, capsys) -> None:
    """An eval run (``cleanroom eval run``) has one stage, ``eval``, and no ``report``. Finished, its attestation
    deleted, it is a broken edge in verify and trace; the Stage 1 order called it "unfinished: stage preflight",
    so deleting the attestation turned a check into "unfinished, --resume"."""
    from cleanroom.ancestry import trace_checked
    from cleanroom.artifacts.layout import EVAL_RUN_COMMAND, unfinished_stage

    assert EVAL_CONFIG["command"] == EVAL_RUN_COMMAND
    run = RunDir.create(tmp_path, "e", EVAL_CONFIG)
    with run.stage("eval", provenance=capture_provenance("eval", run_id="e", config=EVAL_CONFIG)) as st:
        st.jsonl("verdicts.jsonl").write({"v": 1}, record_id="eval/model:1")
    (run.path / "eval" / "manifest.json").rename(run.path / "manifest.json.saved")  # killed before the manifest
    assert unfinished_stage(run.path) == "eval"
    (run.path / "manifest.json.saved").rename(run.path / "eval" / "manifest.json")
    assert main(["verify", str(run.path)]) == 1  # killed before finalize: finished stage, no attestation
    assert capsys.readouterr().out.startswith("BROKEN: attestation.json")
    run.finalize()
    assert verify_run(run.path).ok
    (run.path / "attestation.json").unlink()
    report, traced = verify_run(run.path), trace_checked(run.path, "eval/model:1").report
    assert (unfinished_stage(run.path), report.unfinished, traced.unfinished) == (None, None, None)
    assert report.first.file == traced.first.file == "attestation.json"
    assert main(["trace", str(run.path), "eval/model:1"]) == 1
    assert capsys.readouterr().out.startswith("UNVERIFIED ancestry of eval/model:1")


def test_an_eval_run_killed_in_eval_names_eval_and_the_eval_run_command(tmp_path, capsys) -> None:
    """Killed before its one stage started, or inside it: unfinished at ``eval`` (Stage 1's order said
    ``preflight``), and verify says to run the same `cleanroom eval run` again, which has no --resume (trace
    walks finished stages' records; an eval run killed inside its one stage has none)."""
    run = RunDir.create(tmp_path, "e", EVAL_CONFIG)
    assert verify_run(run.path).unfinished == "eval"
    with pytest.raises(RuntimeError), run.stage("eval", provenance=capture_provenance("eval", run_id="e")) as st:
        st.jsonl("verdicts.jsonl").write({"v": 1}, record_id="eval/model:1")
        raise RuntimeError("killed")
    want = (f"unfinished: {run.path}: stage eval not done; verify checks finished runs. Continue it by running the "
            "same `cleanroom eval run` command again, with the same arguments (--out and --run-id included; eval run "
            "has no --resume: the same arguments resume it)")
    assert main(["verify", str(run.path)]) == 1
    assert capsys.readouterr().out.splitlines() == [want]


def test_a_run_whose_command_cannot_be_read_is_not_called_unfinished(tmp_path) -> None:
    """Fail closed: the stage order comes from the config the run recorded; a config that is not the one run.json
    names, or that names a command no run records, gives no order, so the run is taken as finished and its
    missing attestation is a broken edge, never "unfinished"."""
    from cleanroom.artifacts.layout import run_command, unfinished_stage

    run = RunDir.create(tmp_path, "r1", CONFIG)
    assert (run_command(run.path), unfinished_stage(run.path)) == ("run stage1", "preflight")
    config = run.path / "config.resolved.yaml"
    config.write_text(config.read_text().replace("seed: 0", "seed: 1"))
    assert (run_command(run.path), unfinished_stage(run.path)) == (None, None)
    assert verify_run(run.path).first.file == "attestation.json"
    other = RunDir.create(tmp_path, "r2", {"command": "eval score"})
    assert (run_command(other.path), unfinished_stage(other.path)) == (None, None)
    config = other.path / "config.resolved.yaml"
    config.write_text(": not yaml [")
    assert (run_command(other.path), unfinished_stage(other.path)) == (None, None)

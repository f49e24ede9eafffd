"""cleanroom.verify: a check that could not run (model, stage input, external parent not on this machine) makes
the report partial, never ok; broken wins over partial; `cleanroom verify` says PARTIAL and exits 1 unless
--allow-unchecked, which exits 0 and still says PARTIAL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanroom.artifacts import RunDir
from cleanroom.cli import main
from cleanroom.provenance import capture_provenance
from cleanroom.verify import verify_run

CONFIG = {"seed": 0}


def _run(tmp_path: Path) -> tuple[RunDir, dict[str, Path]]:
    """A finished run whose stages depend on three things outside it: a base model directory (both stages'
    provenance), a data file (the gen stage's input) and a reference file (the parent of every eval record)."""
    model = tmp_path / "base-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2"}')
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    data = tmp_path / "data" / "prompts.jsonl"
    data.parent.mkdir()
    data.write_text('{"prompt": "p0"}\n')
    reference = tmp_path / "ref" / "gold.jsonl"
    reference.parent.mkdir()
    reference.write_text('{"gold": 1}\n')
    run = RunDir.create(tmp_path / "runs", "r1", CONFIG)
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r1", model_path=model), inputs=[data]) as st:
        w = st.jsonl("g.jsonl")
        ids = [w.write({"text": t}, record_id=f"gen:{i}") for i, t in enumerate("ab")]
    with run.stage("eval", provenance=capture_provenance("eval", run_id="r1", model_path=model)) as st:
        w = st.jsonl("v.jsonl")
        for i, gid in enumerate(ids):
            w.write({"ok": True}, record_id=f"eval:{i}",
                    parents=[run.ref("gen/g.jsonl", gid), run.ref(str(reference), None)])
    run.finalize()
    return run, {"model": model.resolve(), "input": data.resolve(), "parent": reference.resolve()}


def _verify(run: RunDir, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, list[str]]:
    code = main(["verify", str(run.path), *flags])
    return code, capsys.readouterr().out.splitlines()


def test_everything_here_is_ok_and_exits_0(tmp_path, capsys) -> None:
    run, _ = _run(tmp_path)
    report = verify_run(run.path)
    assert (report.status, report.ok, report.unchecked, report.not_run) == ("ok", True, (), 0)
    assert {k: v for k, v in report.counts.items() if k.endswith("unchecked")} == {
        "parents_unchecked": 0, "inputs_unchecked": 0, "model_files_unchecked": 0}
    assert (report.counts["inputs"], report.counts["model_files"], report.counts["parents"]) == (1, 2, 4)
    code, lines = _verify(run, capsys)
    assert code == 0 and lines[0].startswith(f"ok: {run.path}: 2 stages") and not any("PARTIAL" in x for x in lines)
    code, lines = _verify(run, capsys, "--json")
    out = json.loads("\n".join(lines))
    assert code == 0 and (out["status"], out["ok"], out["unchecked"], out["checks_not_run"]) == ("ok", True, [], 0)


@pytest.mark.parametrize(
    ("kind", "count", "recorded_in", "counter"),
    [
        ("model", 2, ("eval/manifest.json", "gen/manifest.json"), "model_files_unchecked"),  # each file once
        ("input", 1, ("gen/manifest.json",), "inputs_unchecked"),
        ("parent", 2, ("eval/v.jsonl",), "parents_unchecked"),  # two records link to it
    ],
)
def test_what_is_not_here_is_unchecked_and_the_report_partial(tmp_path, capsys, kind, count, recorded_in,
                                                             counter) -> None:
    """Each dependency outside the run, moved away: no broken edge, yet not ok; the one unchecked group names
    what, the path looked for, where it is recorded and how to check it. The old rule (ok iff no broken edge)
    would have passed every one of these runs."""
    run, outside = _run(tmp_path)
    outside[kind].rename(tmp_path / f"moved-{kind}")
    report = verify_run(run.path)
    assert report.errors == ()  # what a fail-open verify would have called ok
    assert (report.status, report.ok, report.not_run) == ("partial", False, count)
    (group,) = report.unchecked
    assert (group.kind, group.path, group.recorded_in, group.count) == (kind, str(outside[kind]), recorded_in, count)
    assert "cleanroom verify` on the machine that holds" in group.how
    assert report.counts[counter] == count and sum(v for k, v in report.counts.items() if k.endswith("unchecked")) == count

    code, lines = _verify(run, capsys)
    assert code == 1
    checks = "1 check" if count == 1 else f"{count} checks"
    assert lines[0].startswith(f"PARTIAL: {run.path}: {checks} did not run ({group.what} not present on this machine)")
    assert lines[0].endswith("the run is not verified") and "--allow-unchecked" not in lines[0]
    assert lines[1].startswith("passed: 2 stages, ")
    assert lines[2:] == [f"unchecked: {group.message}"]
    assert str(outside[kind]) in lines[2] and all(m in lines[2] for m in recorded_in)
    assert not any(x.startswith("ok:") for x in lines)


def test_a_moved_model_names_its_path_and_manifests_and_counts_what_passed(tmp_path, capsys) -> None:
    run, outside = _run(tmp_path)
    outside["model"].rename(tmp_path / "moved")
    code, lines = _verify(run, capsys)
    assert code == 1 and lines[0].startswith("PARTIAL: ") and "2 checks did not run (2 base model files not present on this machine)" in lines[0]
    # 2 stages; files: g.jsonl, v.jsonl and each stage.json; 4 records; 4 parent links; 1 input; 0 model files
    assert lines[1] == "passed: 2 stages, 4 files, 4 records, 4 parent links, 1 stage inputs, 0 base model files"
    assert lines[2] == (
        f"unchecked: 2 base model files not checked: {outside['model']} (recorded in eval/manifest.json, "
        f"gen/manifest.json) is not present here; run `cleanroom verify` on the machine that holds the model, or "
        f"pass --remap {outside['model']}=DIR naming the directory that holds the same files here"
    )


def test_allow_unchecked_exits_0_and_still_says_partial(tmp_path, capsys) -> None:
    run, outside = _run(tmp_path)
    outside["model"].rename(tmp_path / "moved")
    code, lines = _verify(run, capsys, "--allow-unchecked")
    assert code == 0 and lines[0].startswith("PARTIAL: ") and "accepted by --allow-unchecked" in lines[0]
    assert "not verified" in lines[0] and not any(x.startswith("ok:") for x in lines)
    code, lines = _verify(run, capsys, "--allow-unchecked", "--json")
    out = json.loads("\n".join(lines))
    assert code == 0 and (out["status"], out["ok"], out["checks_not_run"]) == ("partial", False, 2)
    (entry,) = out["unchecked"]
    assert entry["kind"] == "model" and entry["path"] == str(outside["model"]) and entry["count"] == 2
    assert entry["recorded_in"] == ["eval/manifest.json", "gen/manifest.json"] and entry["how"] in entry["message"]


def test_several_groups_are_listed_in_the_order_the_checks_run(tmp_path, capsys) -> None:
    run, outside = _run(tmp_path)
    for kind in ("parent", "model", "input"):
        outside[kind].rename(tmp_path / f"moved-{kind}")
    report = verify_run(run.path)
    assert [u.kind for u in report.unchecked] == ["input", "model", "parent"] and report.not_run == 1 + 2 + 2
    assert report.not_run_what == "1 stage input, 2 base model files, 2 parent links to an external artifact"
    code, lines = _verify(run, capsys)
    assert code == 1 and "5 checks did not run (1 stage input, 2 base model files, 2 parent links" in lines[0]
    assert [x.split(" not checked:")[0] for x in lines[2:]] == [
        "unchecked: 1 stage input", "unchecked: 2 base model files", "unchecked: 2 parent links to an external artifact"]


def test_broken_wins_over_partial_and_allow_unchecked_does_not_accept_it(tmp_path, capsys) -> None:
    run, outside = _run(tmp_path)
    outside["model"].rename(tmp_path / "moved")
    path = run.path / "gen" / "g.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"b"', b'"c"'))  # a tampered record, line 2
    report = verify_run(run.path)
    assert (report.status, report.ok) == ("broken", False)
    assert report.first is not None and (report.first.file, report.first.line) == ("gen/g.jsonl", 2)
    assert [u.kind for u in report.unchecked] == ["model"]  # still reported beside the broken edge
    for flags in ((), ("--allow-unchecked",)):
        code, lines = _verify(run, capsys, *flags)
        assert code == 1 and lines[0].startswith("BROKEN: gen/g.jsonl line 2: content_sha256")
        assert lines[-1].startswith("unchecked: 2 base model files") and not any("PARTIAL" in x for x in lines)
    code, lines = _verify(run, capsys, "--json", "--allow-unchecked")
    out = json.loads("\n".join(lines))
    assert code == 1 and out["status"] == "broken" and out["first_broken"]["line"] == 2
    assert [u["kind"] for u in out["unchecked"]] == ["model"]


def test_allow_unchecked_does_not_accept_an_unfinished_run(tmp_path, capsys) -> None:
    run = RunDir.create(tmp_path, "r1", CONFIG)
    with pytest.raises(RuntimeError), run.stage("a", provenance=capture_provenance("a")):
        raise RuntimeError("killed")
    assert verify_run(run.path).status == "unfinished"
    code, lines = _verify(run, capsys, "--allow-unchecked")
    assert code == 1 and lines[0].startswith("unfinished: ")
    code, lines = _verify(run, capsys, "--allow-unchecked", "--json")
    assert code == 1 and json.loads("\n".join(lines))["status"] == "unfinished"


def test_remap_checks_what_moved_against_the_recorded_digests(tmp_path, capsys) -> None:
    """The model, the input and the external parent copied under another directory: --remap RECORDED=LOCAL
    looks for them there, every check runs (ok), and an edited copy is a broken edge naming the local file."""
    (tmp_path / "made").mkdir()
    run, outside = _run(tmp_path / "made")
    moved = tmp_path / "elsewhere"
    (tmp_path / "made").rename(moved)  # the whole tree moved: model, data, reference and the run itself
    run_path = moved / "runs" / "r1"
    report = verify_run(run_path)
    assert report.status == "partial" and [u.kind for u in report.unchecked] == ["input", "model", "parent"]
    report = verify_run(run_path, remap={str(tmp_path / "made"): moved})
    assert report.status == "ok" and report.counts["model_files"] == 2 and report.counts["inputs"] == 1
    assert report.counts["parents"] == 4 and report.not_run == 0
    assert main(["verify", str(run_path), "--remap", f"{tmp_path / 'made'}={moved}"]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {run_path}: 2 stages")
    local_config = moved / "base-model" / "config.json"
    local_config.write_text('{"model_type": "llama"}')
    report = verify_run(run_path, remap={str(outside["model"]): moved / "base-model"}, rehash_models=True)
    assert report.status == "broken" and report.first is not None
    assert report.first.file == str(local_config.resolve()) and "base model file" in report.first.check
    # the other two are still not here (only the model was remapped): listed beside the broken edge
    assert [u.kind for u in report.unchecked] == ["input", "parent"]


def test_a_remap_whose_local_lacks_the_model_stays_partial_and_names_both_paths(tmp_path, capsys) -> None:
    run, outside = _run(tmp_path)
    outside["model"].rename(tmp_path / "moved")
    empty = tmp_path / "empty"
    empty.mkdir()
    report = verify_run(run.path, remap={str(tmp_path.resolve()): empty})
    (model,) = [u for u in report.unchecked if u.kind == "model"]  # the input and reference are not there either
    assert report.status == "partial"
    assert model.path == str(empty.resolve() / "base-model") and model.recorded_path == str(outside["model"])
    assert f"(remapped from {outside['model']}; recorded in eval/manifest.json" in model.message


@pytest.mark.parametrize(
    ("remap", "needle"),
    [
        ("no-equals-sign", "expected RECORDED=LOCAL"),
        ("relative/path={local}", "RECORDED must be the absolute path"),
        ("{recorded}={local}/nowhere", "does not exist here"),
        ("/not/recorded={local}", "the run recorded no path under /not/recorded"),
    ],
)
def test_a_remap_that_cannot_apply_is_a_usage_error(tmp_path, capsys, remap, needle) -> None:
    run, outside = _run(tmp_path)
    arg = remap.format(recorded=outside["model"], local=tmp_path)
    assert main(["verify", str(run.path), "--remap", arg]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("cleanroom verify: ConfigError: --remap ")


def test_a_remap_given_twice_is_a_usage_error_and_a_typo_never_hides_a_broken_edge(tmp_path, capsys) -> None:
    run, outside = _run(tmp_path)
    assert main(["verify", str(run.path), "--remap", f"{outside['model']}={tmp_path}",
                 "--remap", f"{outside['model']}={run.path}"]) == 2
    assert "is given twice" in capsys.readouterr().err
    attestation = run.path / "attestation.json"
    attestation.write_text(attestation.read_text() + " ")  # a broken edge
    assert main(["verify", str(run.path), "--remap", f"/not/recorded={tmp_path}"]) == 1
    assert capsys.readouterr().out.startswith("BROKEN:")


def test_the_package_exports_verify_run_and_trace_record() -> None:
    """``cleanroom.verify_run`` is the public name (README, docs/architecture.md); it resolves lazily."""
    import cleanroom
    from cleanroom import verify

    assert cleanroom.verify_run is verify.verify_run and cleanroom.trace_record is verify.trace_record


def test_a_missing_file_of_the_run_itself_is_broken_never_unchecked(tmp_path) -> None:
    """An input inside the run travels with it: its absence is the run's own file gone, a broken edge (first at
    the stage that lists it, then at the input check), never a check left for another machine."""
    run = RunDir.create(tmp_path, "r1", CONFIG)
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r1")) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:1")
    with run.stage("eval", provenance=capture_provenance("eval", run_id="r1"), inputs=["gen/g.jsonl"]) as st:
        st.jsonl("v.jsonl").write({"ok": True}, record_id="eval:1")
    run.finalize()
    (run.path / "gen" / "g.jsonl").unlink()
    report = verify_run(run.path)
    assert report.status == "broken" and report.first is not None and report.first.file == "gen/g.jsonl"
    assert report.unchecked == ()
    assert any(e.check == "stage input recorded in eval/manifest.json exists (inside the run)" for e in report.errors)


def test_a_model_built_inside_the_run_and_deleted_is_broken_even_with_allow_unchecked(tmp_path, monkeypatch,
                                                                                      capsys) -> None:
    """A random-init model lives in the run directory and is recorded by its resolved path; verified as
    ``runs/r1`` from the parent, its absence is the run's own file gone: BROKEN, which --allow-unchecked
    does not excuse."""
    from cleanroom.cli import main

    run = RunDir.create(tmp_path / "runs", "r1", CONFIG)
    model = run.path / "random-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r1", model_path=model)) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:1")
    run.finalize()
    monkeypatch.chdir(tmp_path)
    assert verify_run("runs/r1").status == "ok"
    (model / "config.json").unlink()
    model.rmdir()
    report = verify_run("runs/r1")
    assert report.status == "broken" and report.unchecked == ()
    assert report.first is not None and "random-model" in report.first.file
    assert "base model file recorded in gen/manifest.json exists (inside the run)" == report.first.check
    assert main(["verify", "runs/r1", "--allow-unchecked"]) == 1
    assert capsys.readouterr().out.startswith("BROKEN:")

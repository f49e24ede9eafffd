"""Bad input fails closed: one line naming what, where and the fix, exit 2, and nothing half-written (each class
found by probing the command line with malformed files, wrong types, colliding paths and bad arguments)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from cleanroom import cli, errors, loader, model_json
from cleanroom.artifacts import RunDir, pretty_json
from cleanroom.cli import fixtures_cmd
from cleanroom.config import load_config
from cleanroom.fs import atomic_write_bytes
from cleanroom.ifeval.checkers import build_instruction
from cleanroom.jsonl import loads, read_jsonl
from cleanroom.provenance import capture_provenance
from cleanroom.trace import list_records
from cleanroom.verify import verify_run

DEEP = "[" * 100_000 + "]" * 100_000  # json.loads answers this with a RecursionError, not a ValueError
DIGITS_5000 = "1" * 5000  # int() refuses it: more digits than Python's int_max_str_digits (4300)
TOO_LONG_INTEGER = "number 111111111111... has 5000 digits, too long: at most 4300 digits are read as an integer"


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# ---------------------------------------------------------------- the JSONL reader


@pytest.mark.parametrize(("line", "why"), [
    (DEEP, "nested deeper"),
    ('{"prompt": "x", "n": NaN}', "NaN is not JSON"),
    ('{"prompt": "x", "prompt": "y"}', "key 'prompt' appears twice"),
    ('{"prompt": "\\ud800"}', "lone surrogate"),
])
def test_jsonl_refuses_what_json_loads_takes_or_crashes_on_at_its_line(tmp_path, line, why) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"prompt": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(errors.InputError, match=rf"data.jsonl line 2: not valid JSON \(.*{why}"):
        read_jsonl(path)


def test_jsonl_keeps_a_surrogate_pair_and_lenient_loads_only_refuses_the_nesting(tmp_path) -> None:
    (tmp_path / "pair.jsonl").write_text('{"p": "\\ud83d\\ude00"}\n')
    assert read_jsonl(tmp_path / "pair.jsonl") == [{"p": "\U0001f600"}]
    assert loads('{"a": NaN, "a": 1}', strict=False) == {"a": 1}
    with pytest.raises(ValueError, match="nested deeper"):
        loads(DEEP, strict=False)


def test_ifeval_json_check_scores_a_too_deep_response_false_instead_of_crashing_the_run() -> None:
    check = build_instruction("detectable_format:json_format", {})
    assert check('{"a": [1, 2]}') is True
    assert check(DEEP) is False


# ---------------------------------------------------------------- the command line's boundary


def test_a_usage_error_is_one_line_with_the_fix_and_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["scan-data", "x.jsonl", "--tokenizer", "t", "--max-length", "0"])
    assert exc.value.code == 2
    line = _one_line(capsys)
    assert line.startswith("cleanroom scan-data: error: argument --max-length: 0 is not >= 1")
    assert "cleanroom scan-data --help" in line


@pytest.mark.parametrize("argv", [["inspect-model", "m"], ["eval", "run", "--model", "m", "--out", "o"]])
def test_a_blank_allow_instruct_reason_is_a_usage_error_naming_the_option(capsys, argv) -> None:
    """It was refused by the loader in its own words ("allow_instruct=True needs a non-empty
    allow_instruct_reason"), after the model was opened, naming a keyword the command line does not have."""
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--allow-instruct", "  "])
    assert exc.value.code == 2
    assert "argument --allow-instruct: the reason is empty" in _one_line(capsys)


@pytest.mark.parametrize("argv", [["--stop-after", "nosuch"], ["--num-processes", "0"]])
def test_run_refuses_a_bad_stage_or_process_count_before_any_work(capsys, argv) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "stage1", "--profile", "tiny", *argv])
    assert exc.value.code == 2 and _one_line(capsys).startswith("cleanroom run: error: argument")


@pytest.mark.parametrize("exc", [
    TypeError("'>' not supported between instances of 'int' and 'str'"),
    # a library whose API moved: an ImportError other than the train extra's is no install hint
    ImportError("cannot import name 'X' from 'transformers'"),
])
def test_an_unforeseen_exception_is_one_line_exit_2_with_its_traceback_saved(monkeypatch, capsys, exc) -> None:
    """One line naming the exception, exit 2, the traceback saved to the file the line names (--debug prints
    it); never a bare traceback with exit 1, which reads as a check's finding."""
    def boom(args):
        raise exc

    monkeypatch.setattr(fixtures_cmd, "run", boom)
    assert cli.main(["fixtures"]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"cleanroom fixtures: unexpected {type(exc).__name__}: {str(exc)[:20]}"), line
    saved = Path(line.split("The traceback is in ")[1].split(";")[0])
    assert "Traceback (most recent call last)" in saved.read_text()
    saved.unlink()
    assert cli.main(["fixtures", "--debug"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_eval_run_refuses_an_adapter_directory_without_an_adapter_before_loading_the_model(tmp_path, capsys) -> None:
    assert cli.main(["eval", "run", "--model", str(tmp_path), "--adapter", str(tmp_path / "nope"),
                     "--out", str(tmp_path / "out")]) == 2
    assert "no adapter_config.json there" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- outputs: nothing lost, nothing half-written


def test_atomic_write_to_a_directory_names_it_and_leaves_no_temp_file(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError) as exc:
        atomic_write_bytes(tmp_path / "out", b"x")
    assert exc.value.filename == str(tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


PROMPT = {"key": 1, "prompt": "Say hi without commas.", "instruction_id_list": ["punctuation:no_comma"],
          "kwargs": [{}]}


@pytest.mark.parametrize("collision", ["out=responses", "out=prompts", "summary=out", "summary=dir"])
def test_eval_score_refuses_colliding_outputs_before_writing_anything(tmp_path, capsys, collision) -> None:
    prompts, responses = tmp_path / "prompts.jsonl", tmp_path / "responses.jsonl"
    prompts.write_text(json.dumps(PROMPT) + "\n")
    responses.write_text(json.dumps({"key": 1, "response": "hi there"}) + "\n")
    (tmp_path / "dir").mkdir()
    out = {"out=responses": responses, "out=prompts": prompts}.get(collision, tmp_path / "v.jsonl")
    summary = {"summary=out": out, "summary=dir": tmp_path / "dir"}.get(collision)
    before = {p: p.read_bytes() for p in (prompts, responses)}
    argv = ["eval", "score", "--prompts", str(prompts), "--responses", str(responses), "--out", str(out)]
    assert cli.main(argv + (["--summary", str(summary)] if summary else [])) == 2
    kind = "OutputPathError: --summary" if collision == "summary=dir" else "ConfigError: --"  # a ConfigError too
    assert kind in _one_line(capsys)
    assert {p: p.read_bytes() for p in (prompts, responses)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "prompts.jsonl", "responses.jsonl"]


# ---------------------------------------------------------------- configs


def test_an_override_given_twice_is_refused(capsys) -> None:
    with pytest.raises(errors.ConfigError, match="sft.train.max_steps is given twice"):
        load_config("tiny", ["sft.train.max_steps=3", "sft.train.max_steps=4"])
    with pytest.raises(errors.ConfigError, match="key 'max_steps' is given twice"):
        load_config("tiny", ["sft.train={max_steps: 3, max_steps: 4}"])


def test_a_profile_with_a_key_twice_or_that_is_a_directory_is_refused_naming_it(tmp_path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("name: a\nseed: 1\nseed: 2\n")
    with pytest.raises(errors.ConfigError, match=r"p.yaml: key 'seed' is given twice in one mapping \(lines 2 and 3\)"):
        load_config(str(profile))
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(errors.MissingFileError, match="d.yaml is a directory"):
        load_config(str(tmp_path / "d.yaml"))


def test_yaml_merge_keys_still_load_and_an_explicit_key_overrides_a_merged_one(tmp_path) -> None:
    """``<<: *anchor`` (and a list of anchors) is valid YAML the duplicate-key check must not refuse; a key given
    beside the merge overrides the merged value, as YAML says; a key twice beside it is still refused."""
    from cleanroom.config import _load_yaml

    assert _load_yaml("b: &b\n  a: 1\n  c: 2\nx:\n  <<: *b\n  a: 3\n") == {"b": {"a": 1, "c": 2},
                                                                              "x": {"a": 3, "c": 2}}
    assert _load_yaml("p: &p {a: 1}\nq: &q {b: 2}\nx:\n  <<: [*p, *q]\n")["x"] == {"a": 1, "b": 2}
    with pytest.raises(errors.ConfigError, match="key 'a' is given twice"):
        _load_yaml("b: &b {a: 1}\nx:\n  <<: *b\n  a: 3\n  a: 4\n")
    tiny = (Path(__file__).resolve().parents[1] / "src/cleanroom/pipeline/profiles/tiny.yaml").read_text()
    assert "\nbaseline:" in tiny and "\nsft_generation:" in tiny
    profile = tmp_path / "merge.yaml"  # the shipped tiny profile with one section merged from another
    lines = [("sft_generation: {<<: *gen, temperature: 0.7}" if line.startswith("sft_generation:") else
              line.replace("baseline:", "baseline: &gen", 1) if line.startswith("baseline:") else line)
             for line in tiny.splitlines()]
    profile.write_text("\n".join(lines) + "\n")
    spec = load_config(str(profile))
    assert spec.sft_generation.temperature == 0.7
    assert spec.sft_generation.max_new_tokens == spec.baseline.max_new_tokens


# ---------------------------------------------------------------- model directories


def _tokenizer_with(tmp_path: Path, source: Path, **values: object) -> Path:
    model = tmp_path / "model"
    shutil.copytree(source, model)
    path = model / "tokenizer_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | values))
    return model


def test_a_wrong_typed_tokenizer_config_value_is_named_not_a_type_error(tmp_path, qwen_base_tokenizer) -> None:
    model = _tokenizer_with(tmp_path, qwen_base_tokenizer, model_max_length="x")
    with pytest.raises(errors.InputError, match=r'tokenizer_config.json: model_max_length is "x", expected a number'):
        loader.CleanModelLoader(model, probe=False).load_tokenizer(decide=False)


def test_a_value_the_type_table_misses_still_fails_as_a_tokenizer_that_would_not_load(
        tmp_path, qwen_base_tokenizer, monkeypatch) -> None:
    """The first encode runs inside the loader's guard: a wrong type transformers stores unchecked and
    trips over later is a ConfigError naming the directory, not a TypeError from deep inside transformers."""
    monkeypatch.setattr(model_json, "TOKENIZER_VALUE_TYPES", {})
    model = _tokenizer_with(tmp_path, qwen_base_tokenizer, model_max_length="x")
    with pytest.raises(errors.ConfigError, match="tokenizer could not be loaded .TypeError"):
        loader.CleanModelLoader(model, probe=False).load_tokenizer(decide=False)


def test_an_instruct_model_given_as_base_is_an_input_error_exit_2(tmp_path) -> None:
    probe = SimpleNamespace(is_instruct=True, reasons=["name marker: instruct in 'x-instruct'"])
    with pytest.raises(errors.InstructModelError, match="looks like an instruct/chat model") as exc:
        loader.CleanModelLoader(tmp_path / "x-instruct")._decide(probe)
    assert isinstance(exc.value, errors.ContaminationError) and exc.value.exit_code == 2
    loader.CleanModelLoader(tmp_path / "x-instruct", allow_instruct=True, allow_instruct_reason="a test")._decide(probe)


def test_the_instruct_refusal_names_the_fix_of_the_surface_that_raised_it(tmp_path, tiny_base_model) -> None:
    """The loader's fix names its own keywords ("with a reason" named none); a caller with another way to accept
    the model gives the same refusal with its fix (a run: the config's keys, not a keyword it has no way to pass)."""
    from cleanroom.pipeline.common import BudgetMeter, Context, load_model

    probe = SimpleNamespace(is_instruct=True, reasons=["name marker: instruct in 'x-instruct'"])
    with pytest.raises(errors.InstructModelError) as exc:
        loader.CleanModelLoader(tmp_path / "x-instruct")._decide(probe)
    assert str(exc.value).endswith("or pass allow_instruct=True with allow_instruct_reason='why' (recorded in "
                                   "provenance)") and exc.value.probe is probe
    other = exc.value.with_fix("pass --allow-instruct REASON")
    assert str(other) == f"{exc.value.refusal} — pass --allow-instruct REASON" and other.probe is probe
    model = tmp_path / "instruct"
    shutil.copytree(tiny_base_model, model)
    gen = json.loads((model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps(gen | {"eos_token_id": [151645, 151643]}))
    spec = load_config("tiny", [f"model.path={model}"])
    ctx = Context(spec=spec, run=RunDir.create(tmp_path, "t", {"seed": 0}), device="cpu", budget=BudgetMeter(0.0),
                  progress=False)
    with pytest.raises(errors.InstructModelError) as exc:
        load_model(ctx, probe=False)
    assert "set model.allow_instruct=true and model.allow_instruct_reason='why' in the profile" in str(exc.value)
    assert "allow_instruct=True" not in str(exc.value)


# ---------------------------------------------------------------- run directories


def _tiny_run(tmp_path: Path) -> RunDir:
    run = RunDir.create(tmp_path / "runs", "r1", {"seed": 0})
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r1")) as st:
        st.jsonl("g.jsonl").write({"text": "a"}, record_id="gen:0")
    run.finalize()
    return run


@pytest.mark.parametrize(("edit", "found"), [
    ({"files": "x"}, "files is str, not an object"),
    ({"records": [1]}, "records is list, not an object"),
    ({"records": {"g.jsonl": "x"}}, "records['g.jsonl'] is str, not an object"),
    ({"files": {"../../etc/passwd": {"sha256": "0"}}}, "outside the stage directory"),
    ({"inputs": "abc"}, "inputs is not a list of objects"),
])
def test_verify_reports_a_wrong_typed_manifest_as_broken_not_a_crash(tmp_path, edit, found) -> None:
    """The manifest's own fields are read whether or not the attestation still covers it (it may have been
    rewritten along with it): a wrong type is a broken edge naming the field, never a crash."""
    run = _tiny_run(tmp_path)
    mpath = run.path / "gen" / "manifest.json"
    mpath.write_bytes(pretty_json(json.loads(mpath.read_text()) | edit))
    report = verify_run(run.path)
    assert report.status == "broken"
    assert any(e.check == "manifest field types" and found in str(e.found) for e in report.errors), report.errors


def test_trace_names_a_manifest_whose_records_are_not_an_object(tmp_path) -> None:
    run = _tiny_run(tmp_path)
    mpath = run.path / "gen" / "manifest.json"
    mpath.write_text(json.dumps(json.loads(mpath.read_text()) | {"records": [1]}))
    with pytest.raises(errors.InputError, match="manifest.json: not a readable stage manifest"):
        list_records(run.path)


def test_verify_and_trace_name_a_too_deep_record_line(tmp_path) -> None:
    run = _tiny_run(tmp_path)
    records = run.path / "gen" / "g.jsonl"
    records.write_bytes(records.read_bytes() + DEEP.encode() + b"\n")
    report = verify_run(run.path)
    assert any(e.file == "gen/g.jsonl" and e.line == 2 and "nested deeper" in str(e.found) for e in report.errors)
    with pytest.raises(errors.InputError, match=r"g.jsonl:2: not a cleanroom record .*nested deeper"):
        list_records(run.path)


def test_trace_names_the_record_line_holding_a_too_long_integer(tmp_path, capsys) -> None:
    run = _tiny_run(tmp_path)
    records = run.path / "gen" / "g.jsonl"
    records.write_bytes(records.read_bytes() + b'{"n": ' + DIGITS_5000.encode() + b"}\n")
    assert cli.main(["trace", str(run.path), "gen:0"]) == 2
    assert f"g.jsonl:2: not a cleanroom record (ValueError: field n: {TOO_LONG_INTEGER}" in _one_line(capsys)


def test_verify_and_trace_report_a_run_config_with_a_too_long_integer_as_broken_not_a_crash(tmp_path, capsys) -> None:
    """A rewritten config.resolved.yaml is a finding (exit 1, a broken edge naming the file), as any other edit
    of a run; PyYAML let this one out as a bare ValueError, and both commands stopped with "unexpected"."""
    run = _tiny_run(tmp_path)
    config = run.path / "config.resolved.yaml"
    config.write_text(config.read_text() + f"x: {DIGITS_5000}\n")
    assert cli.main(["verify", str(run.path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert any(e["file"] == "config.resolved.yaml" and e["check"] == "valid YAML" and TOO_LONG_INTEGER in e["found"]
               for e in report["errors"]), report["errors"]
    assert cli.main(["trace", str(run.path), "gen:0"]) == 1
    assert "BROKEN: config.resolved.yaml" in capsys.readouterr().out


# ---------------------------------------------------------------- fixtures


def test_a_fixture_changed_in_the_cache_is_named_not_listed_as_ready(tmp_path) -> None:
    from cleanroom import fixtures

    target = tmp_path / "fx"
    fixtures._build_atomically(target, lambda out: (out / "model.safetensors").write_bytes(b"weights"))
    assert fixtures.check_fixture(target) == "verified"
    (target / "model.safetensors").write_bytes(b"weightz")
    with pytest.raises(errors.InputError, match=r"model.safetensors: changed since the fixture was built .*rebuild"):
        fixtures.check_fixture(target)
    (target / "model.safetensors").write_bytes(b"weights")
    (target / "extra.json").write_text("{}")
    with pytest.raises(errors.InputError, match="extra.json: changed since .*found added"):
        fixtures.check_fixture(target)
    (target / ".sha256.json").unlink()
    assert fixtures.check_fixture(target) == "unverified"


def test_a_jsonl_path_that_is_a_directory_or_a_device_says_so(tmp_path) -> None:
    with pytest.raises(errors.MissingFileError, match="is a directory"):
        read_jsonl(tmp_path)
    with pytest.raises(errors.MissingFileError, match="is not a regular file"):
        read_jsonl("/dev/null")


def test_gates_write_baseline_refuses_to_replace_a_file_that_is_no_baseline(tmp_path, capsys) -> None:
    source = tmp_path / "a.py"
    source.write_text("x = 1\n")
    assert cli.main(["gates", "--write-baseline", str(source), str(source)]) == 2
    assert "exists and is not a gates baseline" in _one_line(capsys)
    assert source.read_text() == "x = 1\n"
    assert cli.main(["gates", "--write-baseline", str(tmp_path / "b.json"), str(source)]) == 0
    assert cli.main(["gates", "--write-baseline", str(tmp_path / "b.json"), str(source)]) == 0  # rewrite: fine
    capsys.readouterr()
    package = tmp_path / "package.json"  # JSON, but no baseline: the suffix says nothing
    package.write_text('{"name": "my-app"}\n')
    assert cli.main(["gates", "--write-baseline", str(package), str(source)]) == 2
    assert "exists and is not a gates baseline" in _one_line(capsys)
    assert package.read_text() == '{"name": "my-app"}\n'


def test_gates_write_baseline_refuses_to_replace_an_empty_file(tmp_path, capsys) -> None:
    """An empty file is no baseline (a baseline is a JSON object): an empty ``__init__.py`` named by mistake
    stays as it was, with the same rule and message shape as every other command's outputs."""
    source = tmp_path / "a.py"
    source.write_text("x = 1\n")
    empty = tmp_path / "__init__.py"
    empty.touch()
    assert cli.main(["gates", "--write-baseline", str(empty), str(source)]) == 2
    assert _one_line(capsys).endswith(f"--write-baseline {empty}: exists and is not a gates baseline; refusing to "
                                      "replace it — pass a new file such as gates-baseline.json, or delete that "
                                      "file first")
    assert empty.read_bytes() == b""


@pytest.mark.parametrize("argv", [["score", "--prompts", "p", "--responses", "r", "--out", "o", "--label", "a\nb"],
                                  ["run", "--model", "m", "--out", "o", "--run-id", "../escaped"]])
def test_eval_refuses_a_label_or_run_id_that_is_no_name_before_reading_anything(capsys, argv) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", *argv])
    assert exc.value.code == 2 and "must match [A-Za-z0-9_.-]+" in _one_line(capsys)


def test_a_config_value_that_breaks_model_construction_names_the_model(tmp_path, tiny_base_model) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_base_model, model)
    config = model / "config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"num_attention_heads": 0}))
    with pytest.raises(errors.ConfigError, match=r"could not be built from config.json \(ZeroDivisionError"):
        loader.CleanModelLoader(model, probe=False).load()


def test_make_set_replaces_no_file_of_an_eval_set_when_one_of_them_cannot_be_written(tmp_path, capsys) -> None:
    (tmp_path / "sft_pool.jsonl").mkdir()
    (tmp_path / "eval_prompts.jsonl").write_text("old\n")
    assert cli.main(["eval", "make-set", "--out", str(tmp_path), "--n-eval", "5", "--n-pool", "5"]) == 2
    assert "sft_pool.jsonl: is a directory where a file is to be written" in _one_line(capsys)
    assert (tmp_path / "eval_prompts.jsonl").read_text() == "old\n"


def test_trace_shows_a_recorded_value_that_is_no_digest_as_such_instead_of_crashing() -> None:
    from cleanroom.trace import TraceNode, format_trace

    parent = TraceNode("external", "/abs", None, None, {"a": 1}, None, ())  # type: ignore[arg-type]
    node = TraceNode("record", "eval/v.jsonl", "eval:1", 2, 12345, {"resolved_path": "/m", "files": {"a": 1}},  # type: ignore[arg-type]
                     (parent,))
    text = format_trace(node)
    assert "content 12345 (not a digest)" in text and 'sha256 {"a": 1} (not a digest)' in text
    assert "a  sha256 1 (not a digest)" in text


@pytest.mark.parametrize("state", ["{", "[]", '{"attempts": 5, "record_files": []}', "{}"])
def test_resuming_a_stage_whose_state_file_is_damaged_names_it_and_the_fix(tmp_path, state) -> None:
    run = RunDir.create(tmp_path, "r1", {"seed": 0})
    (run.path / "gen").mkdir()
    (run.path / "gen" / "stage.json").write_text(state)
    with pytest.raises(errors.ProvenanceError, match=r"gen/stage.json: the state of unfinished stage gen is "
                                                     r"unreadable .*delete .*/gen to run the stage again"):
        with run.stage("gen", provenance=capture_provenance("gen", run_id="r1")):
            pass


def test_a_run_json_whose_ids_are_not_strings_is_refused(tmp_path) -> None:
    run = RunDir.create(tmp_path, "r1", {"seed": 0})
    meta = json.loads((run.path / "run.json").read_text())
    (run.path / "run.json").write_text(json.dumps(meta | {"run_id": 5}))
    with pytest.raises(errors.ProvenanceError, match="run_id 5 and config_sha256 .* must be strings"):
        RunDir.open(run.path)

"""The fail-closed audit's findings, through the real command line: an integer too long for Python in any JSON,
JSONL or YAML input, a vocabulary that does not match its config, a tokenizer class whose backend is missing —
each one line saying what, where and the fix, exit 2, nothing written (and transformers' report not above it)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cleanroom import cli, errors
from cleanroom.jsonl import loads

BIG = "1" * 5000  # past Python's default int_max_str_digits (4300)
TOO_LONG = "number 111111111111... has 5000 digits, too long: at most 4300 digits are read as an integer"
PYTHONS_HINT = "set_int_max_str_digits"  # Python's own advice: change the interpreter


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert PYTHONS_HINT not in err[0], err[0]
    return err[0]


# ---------------------------------------------------------------- (a) an integer of 5,000 digits


def test_the_json_reader_names_the_field_of_a_too_long_integer_strict_or_lenient() -> None:
    for strict in (True, False):
        with pytest.raises(ValueError, match=r"^field kwargs\[0\]\['n'\]: " + TOO_LONG.replace(".", r"\.")):
            loads('{"key": 1, "kwargs": [{"n": ' + BIG + '}]}', strict=strict)
    with pytest.raises(ValueError, match=r"^number -11111111111\.\.\. has 5000 digits"):
        loads("-" + BIG)  # a bare number has no field
    with pytest.raises(ValueError, match="key 'a' appears twice"):  # the first defect is still the one named
        loads('{"x": {"a": 1, "a": 2}, "n": ' + BIG + "}")


def test_eval_score_names_the_prompt_file_line_and_field_and_writes_nothing(tmp_path, capsys) -> None:
    prompt = {"prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    prompts, responses = tmp_path / "prompts.jsonl", tmp_path / "responses.jsonl"
    prompts.write_text(json.dumps({"key": 1, **prompt}) + "\n" + '{"key": ' + BIG + ", " + json.dumps(prompt)[1:] + "\n")
    responses.write_text(json.dumps({"key": 1, "response": "hi"}) + "\n")
    assert cli.main(["eval", "score", "--prompts", str(prompts), "--responses", str(responses),
                     "--out", str(tmp_path / "v.jsonl")]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"cleanroom eval: InputError: {prompts} line 2: ") and f"field key: {TOO_LONG}" in line
    assert line.endswith("write it as a string (in quotes) or shorten it)")
    assert not (tmp_path / "v.jsonl").exists()


def test_a_gates_baseline_with_a_too_long_integer_is_named(tmp_path, capsys) -> None:
    source, baseline = tmp_path / "a.py", tmp_path / "baseline.json"
    source.write_text("x = 1\n")
    baseline.write_text('{"version": 1, "tool": "cleanroom gates", "findings": [{"rule": "CR101", "path": "a.py", '
                        f'"fingerprint": "0", "line": {BIG}}}]}}\n')
    assert cli.main(["gates", "--no-cache", "--baseline", str(baseline), str(source)]) == 2
    line = _one_line(capsys)
    assert f"{baseline}: not a cleanroom gates baseline (field findings[0]['line']: {TOO_LONG}" in line


def test_a_config_override_or_profile_with_a_too_long_integer_is_a_config_error_before_any_work(
        tmp_path, capsys) -> None:
    assert cli.main(["run", "stage1", "--profile", "tiny", "--out", str(tmp_path / "runs"), f"seed={BIG}"]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"cleanroom run: ConfigError: override 'seed={'1' * 95}...': value not valid YAML at "
                           f"line 1 column 1: {TOO_LONG}"), line
    profile = tmp_path / "p.yaml"
    profile.write_text(f"name: p\nseed: {BIG}\n")
    assert cli.main(["run", "stage1", "--profile", str(profile), "--out", str(tmp_path / "runs")]) == 2
    assert f"{profile}: not valid YAML at line 2 column 7: {TOO_LONG}" in _one_line(capsys)
    assert not (tmp_path / "runs").exists()


def test_a_key_with_a_newline_is_quoted_and_a_long_path_is_cut() -> None:
    with pytest.raises(ValueError) as exc:
        loads('{"prompt\\nforged: OK": ' + BIG + "}")
    assert str(exc.value).startswith("field 'prompt\\nforged: OK': number") and "\n" not in str(exc.value)
    with pytest.raises(ValueError, match=r"^field k{77}\.\.\.: number"):
        loads('{"' + "k" * 20000 + '": ' + BIG + "}")


def test_a_number_past_a_floats_range_is_refused_in_strict_json_not_read_as_infinity() -> None:
    with pytest.raises(ValueError, match=r"number -1e5000 is beyond a float's range"):
        loads('{"score": -1e5000}')
    assert loads('{"score": 1e5000}', strict=False) == {"score": float("inf")}  # json.loads' leniency, kept
    assert loads('{"score": 1.5e308, "p": 2.5e-320}') == {"score": 1.5e308, "p": 2.5e-320}


@pytest.mark.parametrize(("value", "why"), [("2001-02-30", "day is out of range for month"),
                                            ("!!float abc", "could not convert string to float")])
def test_a_yaml_value_its_constructor_refuses_is_a_config_error_at_its_line(tmp_path, capsys, value, why) -> None:
    assert cli.main(["run", "stage1", "--profile", "tiny", "--out", str(tmp_path / "runs"), f"seed={value}"]) == 2
    line = _one_line(capsys)
    assert "value not valid YAML at line 1 column 1:" in line and why in line, line
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- (b) a vocabulary that does not match


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The command in a child process: transformers' console handler writes to the real stderr, which only a
    child's captured stderr shows as a user sees it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "cleanroom.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def _model_with(tmp_path: Path, source: Path, name: str = "model", **config: object) -> Path:
    model = tmp_path / name
    shutil.copytree(source, model)
    path = model / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | config))
    return model


def _not_progress(stderr: str) -> list[str]:
    """stderr's lines without transformers' weight-loading progress bar (drawn while the weights are read)."""
    return [line for line in stderr.strip().splitlines() if "Loading weights" not in line]


def test_a_config_vocab_size_that_does_not_match_is_one_line_before_any_weight_is_read(tmp_path,
                                                                                        tiny_base_model) -> None:
    """config.json says 1,000 rows, the tokenizer and the weights 151,665 and 151,936: refused before the weights
    load, so transformers neither draws its progress bar nor prints its LOAD REPORT (nor its config warnings)."""
    model = _model_with(tmp_path, tiny_base_model, vocab_size=1000)
    proc = _cli("inspect-model", model)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"cleanroom inspect-model: ConfigError: {model}: tokenizer has 151665 tokens but the embedding has 1000 rows "
        "(config vocab_size 1000; padding of at most 1024 rows is normal); the tokenizer or config.json does not "
        "belong to this model — copy the model's own tokenizer files and config.json"], proc.stderr
    assert proc.stdout == ""


def test_the_refused_loads_transformers_log_is_kept_for_debug(tmp_path, tiny_base_model) -> None:
    from cleanroom.loader import CleanModelLoader

    model = _model_with(tmp_path, tiny_base_model, vocab_size=1000)
    with pytest.raises(errors.ConfigError, match="embedding has 1000 rows") as exc:
        CleanModelLoader(model, probe=False).load()
    (note,) = exc.value.__notes__
    assert note.startswith("transformers logged while loading (held off the console):")
    assert "bos_token_id must be `None` or an integer within the vocabulary (between 0 and 999)" in note


def test_weights_that_do_not_match_config_json_name_the_shapes_without_the_load_report(tmp_path,
                                                                                         tiny_base_model) -> None:
    """152,064 rows in config.json (399 of padding: the tokenizer fits), 151,936 in the weights: transformers
    refuses after its LOAD REPORT ("For details look at the above report!"); the one line carries the shapes."""
    model = _model_with(tmp_path, tiny_base_model, vocab_size=152064)
    proc = _cli("inspect-model", model)
    assert proc.returncode == 2, proc.stderr
    assert "LOAD REPORT" not in proc.stderr and "MISMATCH" not in proc.stderr, proc.stderr
    assert _not_progress(proc.stderr) == [
        f"cleanroom inspect-model: ConfigError: {model}: model weights (model.safetensors) could not be read (shapes "
        "differ: model.embed_tokens.weight: checkpoint [151936, 64], model [152064, 64]); the file is truncated, "
        "corrupt or does not match config.json — download it again and compare its sha256"], proc.stderr


def test_layer_weights_that_do_not_match_are_named_by_their_grouped_keys(tmp_path, tiny_base_model) -> None:
    """transformers groups the rows of several layers as ``model.layers.{0, 1}.mlp.up_proj.weight`` (a key
    with a space): still read for the shapes, never "look at the above report" with the report held back."""
    model = _model_with(tmp_path, tiny_base_model, intermediate_size=96)
    proc = _cli("inspect-model", model)
    assert proc.returncode == 2, proc.stderr
    (line,) = _not_progress(proc.stderr)
    assert "model.layers.{0, 1}.mlp.up_proj.weight: checkpoint [128, 64], model [96, 64]" in line, line
    assert "above report" not in line


def test_a_load_that_succeeds_still_shows_transformers_load_report(tmp_path, tiny_base_model) -> None:
    """The report of a load cleanroom accepts is shown (after the load): it says which weights were ignored or
    newly initialised, which a user relies on."""
    import torch
    from safetensors.torch import load_file, save_file

    model = _model_with(tmp_path, tiny_base_model)
    weights = load_file(model / "model.safetensors")
    save_file(weights | {"model.extra.weight": torch.zeros(2, 2)}, model / "model.safetensors",
              metadata={"format": "pt"})
    proc = _cli("inspect-model", model)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"CLEAN {model}:")
    assert "LOAD REPORT" in proc.stderr and "model.extra.weight" in proc.stderr and "UNEXPECTED" in proc.stderr


# ---------------------------------------------------------------- (c) a tokenizer class whose backend is missing


def test_a_tokenizer_class_whose_backend_is_not_installed_is_a_dependency_error(tmp_path, tiny_base_model,
                                                                                 capsys) -> None:
    assert importlib.util.find_spec("mistral_common") is None, "this check needs mistral-common not installed"
    tokenizer = tmp_path / "tok"
    shutil.copytree(tiny_base_model, tokenizer, ignore=shutil.ignore_patterns("*.safetensors", "config.json"))
    config = tokenizer / "tokenizer_config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"tokenizer_class": "MistralCommonBackend"}))
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "hello"}\n')
    expected = (f"cleanroom scan-data: DependencyError: {tokenizer}: tokenizer class MistralCommonBackend needs "
                "mistral-common, which is not installed: pip install mistral-common")
    assert cli.main(["scan-data", str(data), "--tokenizer", str(tokenizer)]) == 2
    assert _one_line(capsys) == expected
    (tokenizer / "tokenizer.json").unlink()  # the file-set check asks transformers for the class first
    assert cli.main(["scan-data", str(data), "--tokenizer", str(tokenizer)]) == 2
    assert _one_line(capsys) == expected


def test_any_class_refused_for_missing_backends_names_them_and_other_import_errors_are_not_claimed(
        monkeypatch) -> None:
    from transformers.utils import import_utils

    for backend in ("sentencepiece", "protobuf"):  # as if neither were installed
        monkeypatch.setitem(import_utils.BACKENDS_MAPPING, backend,
                            (lambda: False, import_utils.BACKENDS_MAPPING[backend][1]))

    class T5Tokenizer:
        pass

    with pytest.raises(ImportError) as exc:
        import_utils.requires_backends(T5Tokenizer, ["sentencepiece", "protobuf"])
    found = errors.missing_backend(exc.value, "/m: tokenizer class")
    assert isinstance(found, errors.DependencyError) and found.exit_code == 2
    assert str(found) == ("/m: tokenizer class T5Tokenizer needs protobuf, sentencepiece, which are not installed: "
                          "pip install protobuf sentencepiece")
    assert errors.missing_backend(ImportError("cannot import name 'X' from 'transformers'")) is None
    for backend, pip in (("sklearn", "scikit-learn"), ("cv2", "opencv-python")):  # "pip install -U scikit-learn"
        if backend in import_utils.BACKENDS_MAPPING:
            monkeypatch.setitem(import_utils.BACKENDS_MAPPING, backend,
                                (lambda: False, import_utils.BACKENDS_MAPPING[backend][1]))
            with pytest.raises(ImportError) as exc:
                import_utils.requires_backends(T5Tokenizer, [backend])
            assert str(errors.missing_backend(exc.value)).endswith(f"pip install {pip}")


def _refuse_for_missing_sentencepiece(monkeypatch, cls: type) -> None:
    """transformers' own refusal of *cls*, as if sentencepiece were not installed."""
    from transformers.utils import import_utils

    monkeypatch.setitem(import_utils.BACKENDS_MAPPING, "sentencepiece",
                        (lambda: False, import_utils.BACKENDS_MAPPING["sentencepiece"][1]))
    import_utils.requires_backends(cls, ["sentencepiece"])


def test_a_model_class_whose_backend_is_missing_names_the_model_directory(tmp_path, tiny_base_model,
                                                                            monkeypatch) -> None:
    """Not "model weights could not be read ... truncated or corrupt", which the ImportError used to become."""
    from transformers import AutoModelForCausalLM

    from cleanroom.loader import CleanModelLoader

    class FancyForCausalLM:
        pass

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: _refuse_for_missing_sentencepiece(monkeypatch, FancyForCausalLM))
    with pytest.raises(errors.DependencyError) as exc:
        CleanModelLoader(tiny_base_model, probe=False).load()
    assert str(exc.value) == (f"{tiny_base_model}: model class FancyForCausalLM needs sentencepiece, which is not "
                              "installed: pip install sentencepiece")


def test_the_command_line_answers_a_missing_backend_anywhere_with_the_install_hint(monkeypatch, capsys) -> None:
    """Outside the loader (no model directory to name) the hint still names the class and the package."""
    from cleanroom.cli import fixtures_cmd

    class SomeTokenizer:
        pass

    monkeypatch.setattr(fixtures_cmd, "run", lambda args: _refuse_for_missing_sentencepiece(monkeypatch,
                                                                                            SomeTokenizer))
    assert cli.main(["fixtures"]) == 2
    assert _one_line(capsys) == ("cleanroom fixtures: DependencyError: class SomeTokenizer needs sentencepiece, which "
                                 "is not installed: pip install sentencepiece")

"""inspect-model and scan-data: exit codes 0/1/2 and the findings they print."""

from __future__ import annotations

import json
import shutil

import pytest

from cleanroom.cli import main


@pytest.fixture()
def data(tmp_path):
    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        return str(path)

    return write


def test_scan_data_clean_bad_malformed(data, qwen_base_tokenizer, capsys):
    tok = str(qwen_base_tokenizer)
    good = data("good.jsonl", [{"prompt": "Q: <b>im_start</b>\nA:", "completion": " ok <|im a cat|>"},
                               {"prompt": "Q:", "chosen": " a", "rejected": " b"}, {"prompt": "eval"}])
    assert main(["scan-data", good, "--tokenizer", tok]) == 0
    bad = data("bad.jsonl", [{"prompt": "Q:", "completion": " fine"},
                             {"prompt": "<|im_start|>assistant\n", "completion": "x"},
                             {"prompt": "Q:", "chosen": " <|fim_prefix|>", "rejected": " b"}])
    capsys.readouterr()
    assert main(["scan-data", bad, "--tokenizer", tok, "--json"]) == 1
    found = json.loads(capsys.readouterr().out)["findings"]
    assert {(f["line"], f["field"], f["token"]) for f in found} == {(2, "prompt", "<|im_start|>"), (3, "chosen", "<|fim_prefix|>")}
    mal = data("mal.jsonl", [{"prompt": "ok"}, "{not json"])
    assert main(["scan-data", mal, "--tokenizer", tok]) == 2
    assert "line 2" in capsys.readouterr().err


@pytest.mark.slow
def test_inspect_model_clean_instruct_missing(tmp_path, tiny_base_model, capsys):
    assert main(["inspect-model", str(tiny_base_model), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] and report["probe"]["is_instruct"] is False
    fake = tmp_path / "tiny-instruct"
    shutil.copytree(tiny_base_model, fake)
    gen = json.loads((fake / "generation_config.json").read_text())
    gen["eos_token_id"] = [151645, 151643]
    (fake / "generation_config.json").write_text(json.dumps(gen))
    assert main(["inspect-model", str(fake), "--no-probe"]) == 1
    assert "end-of-turn" in capsys.readouterr().out
    assert main(["inspect-model", str(fake), "--no-probe", "--allow-instruct", "ablation baseline"]) == 0
    assert main(["inspect-model", str(tmp_path / "missing")]) == 2


def test_scan_data_non_utf8_is_exit_2_naming_the_line(tmp_path, qwen_base_tokenizer, capsys):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    assert main(["scan-data", str(path), "--tokenizer", str(qwen_base_tokenizer)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "UTF-8" in err


@pytest.mark.parametrize(
    ("record", "message"),
    [({"prompt": "Q:", "chosen": " a"}, "'rejected' is missing"),
     ({"prompt": "Q:", "response": " a"}, "'response' belongs to no record shape"),
     ({"prompt": "Q:", "completion": " a", "chosen": " a", "rejected": " b"}, "mix the SFT and DPO"),
     ({"completion": " a"}, "'prompt' must be a string"),
     ({"prompt": "Q:", "completion": 3}, "'completion' must be a string")],
)
def test_scan_data_rejects_incomplete_or_unknown_shapes(data, qwen_base_tokenizer, capsys, record, message):
    path = data("shape.jsonl", [{"prompt": "fine", "key": 1, "instruction_id_list": ["a"], "kwargs": [{}]}, record])
    assert main(["scan-data", path, "--tokenizer", str(qwen_base_tokenizer)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and message in err


def test_scan_data_dpo_identical_pair_is_a_finding(data, qwen_base_tokenizer, capsys):
    path = data("dpo.jsonl", [{"prompt": "Q:", "chosen": " a", "rejected": " b"},
                              {"prompt": "Q:", "chosen": " same", "rejected": " same"}])
    assert main(["scan-data", path, "--tokenizer", str(qwen_base_tokenizer), "--json"]) == 1
    found = json.loads(capsys.readouterr().out)["findings"]
    assert [(f["line"], f["field"]) for f in found] == [(2, "chosen/rejected")] and "identical" in found[0]["why"]


def test_scan_data_does_not_judge_the_model_kind(tmp_path, data, qwen_base_tokenizer):
    """A tokenizer saved as runs/<id>/sft/adapter, or even an instruct one, is fine for scanning text."""
    for where in ("runs/20260101-abc/sft/adapter", "Qwen2.5-7B-Instruct"):
        tok_dir = tmp_path / where
        shutil.copytree(qwen_base_tokenizer, tok_dir)
        assert main(["scan-data", data("ok.jsonl", [{"prompt": "Q:", "completion": " a"}]), "--tokenizer",
                     str(tok_dir)]) == 0


def test_inspect_model_truncated_weights_is_exit_2(tmp_path, tiny_base_model, capsys):
    bad = tmp_path / "truncated"
    shutil.copytree(tiny_base_model, bad)
    (bad / "model.safetensors").write_bytes((bad / "model.safetensors").read_bytes()[:1000])
    assert main(["inspect-model", str(bad)]) == 2
    assert "model.safetensors" in capsys.readouterr().err


@pytest.mark.slow
def test_inspect_model_json_instruct_carries_probe_scores(tmp_path, tiny_base_model, capsys):
    fake = tmp_path / "tiny"
    shutil.copytree(tiny_base_model, fake)
    gen = json.loads((fake / "generation_config.json").read_text())
    gen["eos_token_id"] = [151645, 151643]
    (fake / "generation_config.json").write_text(json.dumps(gen))
    capsys.readouterr()
    assert main(["inspect-model", str(fake), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is False and isinstance(report["reasons"], list)
    assert any("end-of-turn" in r for r in report["reasons"])
    probe = report["probe"]
    assert probe["is_instruct"] and probe["p_eot"] < 1e-3 and probe["threshold"] == 0.2 and "p_role" in probe
    assert probe["name_markers"] == []


def test_inspect_model_without_weights_is_not_checked_and_says_so(tmp_path, tiny_base_model, capsys):
    """Tokenizer and config alone: the probe did not run, so no `instruct=False`, and no exit 0 for a model."""
    bare = tmp_path / "tokenizer-only"
    shutil.copytree(tiny_base_model, bare, ignore=shutil.ignore_patterns("*.safetensors"))
    assert main(["inspect-model", str(bare)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"NOT CHECKED {bare} (checked: tokenizer, config.json, generation_config.json)")
    assert "probe: not run (no weights in" in out and "instruct=" not in out and "p_eot=None" not in out
    assert main(["inspect-model", str(bare), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is None and report["checked"] == "tokenizer-only" and report["verdict"] == "NOT CHECKED"
    assert report["probe_not_run"].startswith("no weights")
    # asking about the tokenizer alone is answered, and the answer says what it covered
    assert main(["inspect-model", str(bare), "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("TOKENIZER-ONLY CLEAN") and "probe: not run (--no-probe)" in out


@pytest.mark.parametrize(("remove", "scope"), [
    (("config.json",), "checked: tokenizer, generation_config.json; no config.json: the markers that read it did not run"),
    (("config.json", "generation_config.json"),
     "checked: tokenizer; no config.json or generation_config.json: the markers that read them did not run"),
])
def test_tokenizer_only_clean_names_the_config_files_it_read_and_those_it_did_not(tmp_path, tiny_base_model, capsys,
                                                                                  remove, scope):
    """A directory without config.json was reported "(tokenizer and config only)": the wording says what was
    read, and that the markers of an absent file did not run."""
    bare = tmp_path / "m_nocfg"
    shutil.copytree(tiny_base_model, bare, ignore=shutil.ignore_patterns("*.safetensors"))
    for name in remove:
        (bare / name).unlink()
    assert main(["inspect-model", str(bare), "--no-probe"]) == 0
    assert capsys.readouterr().out.startswith(f"TOKENIZER-ONLY CLEAN {bare} ({scope}): base EOS")
    assert main(["inspect-model", str(bare), "--no-probe", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["configs"] == [
        n for n in ("config.json", "generation_config.json") if n not in remove]


@pytest.mark.parametrize(("data", "where"), [
    (b'{"prompt": "ok"}\n{"prompt": "\xff"}\n', "line 2: not UTF-8"),
    (b'\xef\xbb\xbf{"prompt": "ok"}\n', "line 1: starts with a UTF-8 byte-order mark"),
    (b'{"prompt": "ok"}\n\n', "line 2: blank line"),
    (b"", "is empty"),
], ids=["xff", "bom", "blank", "empty"])
def test_scan_data_refuses_a_defective_file_naming_it_and_never_says_clean(tmp_path, qwen_base_tokenizer, capsys,
                                                                            data, where):
    path = tmp_path / "d.jsonl"
    path.write_bytes(data)
    assert main(["scan-data", str(path), "--tokenizer", str(qwen_base_tokenizer)]) == 2
    captured = capsys.readouterr()
    assert "clean" not in captured.out and where in captured.err and str(path) in captured.err


def test_inspect_model_with_a_non_utf8_tokenizer_file_is_exit_2(tmp_path, tiny_base_model, capsys):
    bad = tmp_path / "bad-tokenizer"
    shutil.copytree(tiny_base_model, bad)
    with (bad / "tokenizer_config.json").open("ab") as fh:
        fh.write(b"\xff")
    assert main(["inspect-model", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "0xff" in err[0] and str(bad) in err[0]


def test_scan_data_checks_the_file_before_the_tokenizer_and_names_dir_vs_file(tmp_path, data, monkeypatch, capsys):
    """A directory given as the data file says 'is a directory'; a file given as --tokenizer says 'is a file';
    a malformed data file is refused without the tokenizer ever being loaded."""
    from cleanroom import loader

    def no_tokenizer(*args, **kwargs):
        raise AssertionError("the tokenizer was loaded before the data file was checked")

    monkeypatch.setattr(loader.CleanModelLoader, "load_tokenizer", no_tokenizer)
    good = data("good.jsonl", [{"prompt": "Q:", "completion": " a"}])
    assert main(["scan-data", str(tmp_path), "--tokenizer", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["scan-data", good, "--tokenizer", good]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert main(["scan-data", str(tmp_path / "absent.jsonl"), "--tokenizer", str(tmp_path)]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    bad = data("bad.jsonl", ["{not json"])
    assert main(["scan-data", bad, "--tokenizer", str(tmp_path / "nowhere")]) == 2
    assert "line 1: not valid JSON" in capsys.readouterr().err


def test_verify_on_a_file_says_is_a_file(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text("{}")
    assert main(["verify", str(path)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_inspect_model_on_a_file_says_is_a_file(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text("{}")
    assert main(["inspect-model", str(path)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a model directory" in err and "does not exist" not in err
    assert main(["inspect-model", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err

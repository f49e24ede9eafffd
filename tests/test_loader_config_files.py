"""The loader fails closed on a config.json, generation_config.json, tokenizer_config.json or GGUF that is there but
unreadable, naming it, and keeps loading a tokenizer-only directory that has no config (the base-or-instruct markers
that read them never go quietly off)."""

from __future__ import annotations

import re
import shutil

import pytest

from cleanroom.cli import main
from cleanroom.errors import ConfigError, InputError
from cleanroom.loader import CleanModelLoader, read_model_config


@pytest.fixture
def model_dir(tmp_path, tiny_base_model):
    """A private copy of the tiny base model (tokenizer, config, generation config), without its weights."""
    out = tmp_path / "m"
    shutil.copytree(tiny_base_model, out, ignore=shutil.ignore_patterns("*.safetensors"))
    return out


def _truncate(path, keep=40):
    path.write_text(path.read_text()[:keep])


@pytest.mark.parametrize("name", ["config.json", "generation_config.json"])
@pytest.mark.parametrize("decide", [True, False])
def test_truncated_config_file_is_an_input_error_naming_it(model_dir, name, decide):
    _truncate(model_dir / name)
    with pytest.raises(InputError) as info:
        CleanModelLoader(model_dir).load_tokenizer(decide=decide)
    message = str(info.value)
    assert str(model_dir / name) in message
    assert "is not valid JSON" in message and "line " in message and "column " in message
    assert "restore the file from the model's repository" in message


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        ("config.json", "[1, 2]", "holds an array, not a JSON object"),
        ("generation_config.json", '"eos"', "holds a string, not a JSON object"),
        ("config.json", '{"model_type": "qwen2", "vocab_size": "many"}', "rejected by transformers"),
        ("config.json", '{"model_type": "no-such-architecture"}', "rejected by transformers"),
        ("generation_config.json", '{"eos_token_id": "151643"}', 'eos_token_id is "151643", expected a token ID'),
        ("config.json", '{"model_type": "qwen2", "bos_token_id": [1, true]}', "bos_token_id is [1, true]"),
    ],
)
def test_config_file_of_the_wrong_shape_is_an_input_error(model_dir, name, content, what):
    (model_dir / name).write_text(content)
    with pytest.raises(InputError, match="restore the file") as info:
        CleanModelLoader(model_dir).load_tokenizer()
    assert str(info.value).startswith(f"{model_dir / name}: {what}")
    assert "\n" not in str(info.value)  # the CLI prints it as one line


def test_directory_without_config_files_still_loads_the_tokenizer(model_dir):
    """Absent files are a tokenizer-only directory, as before: the markers that need config do not fire."""
    (model_dir / "config.json").unlink()
    (model_dir / "generation_config.json").unlink()
    tokenizer, prov = CleanModelLoader(model_dir).load_tokenizer()
    assert tokenizer("Hello world")["input_ids"] == [9707, 1879]
    assert prov["probe"] is not None and prov["probe"]["is_instruct"] is False
    assert "config.json" not in prov["files"]


def test_generation_config_alone_is_read(model_dir):
    """A directory with a generation config but no config.json still has that file read (and checked)."""
    (model_dir / "config.json").unlink()
    _, prov = CleanModelLoader(model_dir).load_tokenizer()
    assert prov["probe"]["is_instruct"] is False
    _truncate(model_dir / "generation_config.json")
    with pytest.raises(InputError, match="generation_config.json: is not valid JSON"):
        CleanModelLoader(model_dir).load_tokenizer()


def test_load_names_the_config_not_the_weights(tmp_path, tiny_base_model):
    """``load()`` reads config.json before the weights: a broken one is not reported as corrupt weights."""
    copy = tmp_path / "full"
    shutil.copytree(tiny_base_model, copy)
    _truncate(copy / "config.json")
    with pytest.raises(InputError, match=r"config\.json: is not valid JSON"):
        CleanModelLoader(copy).load()


def test_read_model_config_names_a_broken_config(model_dir):
    _truncate(model_dir / "config.json")
    with pytest.raises(InputError, match=r"config\.json: is not valid JSON \(.*line \d+ column \d+"):
        read_model_config(model_dir)


def test_cli_exits_2_with_one_line_naming_the_file(model_dir, capsys):
    _truncate(model_dir / "config.json")
    assert main(["inspect-model", str(model_dir), "--no-probe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"cleanroom inspect-model: InputError: {model_dir / 'config.json'}: is not valid JSON")


def test_cut_gguf_is_an_input_error_naming_it(tmp_path, smollm2_instruct):
    """A GGUF's config comes from its metadata: a file cut short gives none, and says so (no struct.error)."""
    source = next(smollm2_instruct.glob("*.gguf"))
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / source.name).write_bytes(source.read_bytes()[:1000])
    with pytest.raises(InputError, match=r"\.gguf: metadata gives no config .*download the GGUF again"):
        CleanModelLoader(tmp_path / "g").load_tokenizer()
    with pytest.raises(ConfigError, match=r"\.gguf: GGUF metadata could not be read"):
        read_model_config(tmp_path / "g", source.name)


@pytest.mark.parametrize(("content", "what"), [(None, "is not valid JSON"), ("[1]", "holds an array, not a JSON object")])
def test_broken_tokenizer_config_is_named(model_dir, content, what):
    path = model_dir / "tokenizer_config.json"
    if content is None:
        _truncate(path)
    else:
        path.write_text(content)
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: {what}"):
        CleanModelLoader(model_dir).load_tokenizer(decide=False)


# ---------------------------------------------------------------- files the tokenizer class needs


def _vocabulary_files(directory):
    """vocab.json and merges.txt written from tokenizer.json's BPE model: the slow files a Qwen2 tokenizer
    is converted from."""
    import json

    bpe = json.loads((directory / "tokenizer.json").read_text())["model"]
    (directory / "vocab.json").write_text(json.dumps(bpe["vocab"]))
    merges = [" ".join(m) if isinstance(m, list) else m for m in bpe["merges"]]
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def test_a_missing_tokenizer_json_is_missing_input_not_contamination(model_dir, tmp_path, capsys):
    """Without tokenizer.json transformers builds the Qwen2 tokenizer with an empty vocabulary ("Hello world"
    encodes to []), which the sentinels reported as contamination (exit 1); it is missing input (exit 2) that
    names the directory, the missing files and the fix."""
    from cleanroom.errors import MissingFileError

    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(MissingFileError) as info:
        CleanModelLoader(model_dir, probe=False).load_tokenizer(decide=False)
    message = str(info.value)
    assert message.startswith(f"{model_dir}: tokenizer files missing (merges.txt, tokenizer.json, vocab.json)")
    assert "'Qwen2Tokenizer', which is built from tokenizer.json or merges.txt + vocab.json" in message
    assert "copy the base model's tokenizer files" in message
    good = tmp_path / "ok.jsonl"
    good.write_text('{"prompt": "Q:", "completion": " a"}\n')
    for argv in (["scan-data", str(good), "--tokenizer", str(model_dir)], ["inspect-model", str(model_dir), "--no-probe"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and "MissingFileError" in err[0] and "tokenizer.json" in err[0], err
        assert "sentinel" not in captured.err and "NOT CLEAN" not in captured.out


def test_the_slow_files_alone_still_load_and_one_missing_is_named(model_dir):
    """vocab.json + merges.txt is a complete set (transformers converts it); without merges.txt it is not."""
    _vocabulary_files(model_dir)
    (model_dir / "tokenizer.json").unlink()
    tokenizer, _ = CleanModelLoader(model_dir, probe=False).load_tokenizer(decide=False)
    assert tokenizer("Hello world")["input_ids"] == [9707, 1879]
    (model_dir / "merges.txt").unlink()
    with pytest.raises(InputError, match=r"tokenizer files missing \(merges\.txt, tokenizer\.json\)"):
        CleanModelLoader(model_dir, probe=False).load_tokenizer(decide=False)


def test_a_tokenizer_json_loads_whatever_slow_files_its_class_lists(model_dir):
    """GPT2Tokenizer's class lists only vocab.json + merges.txt, yet transformers 5 loads tokenizer.json for it and
    its save_pretrained writes exactly tokenizer.json + tokenizer_config.json; that layout was refused."""
    import json

    config = model_dir / "tokenizer_config.json"
    values = json.loads(config.read_text())
    config.write_text(json.dumps(values | {"tokenizer_class": "GPT2Tokenizer"}))
    tokenizer, _ = CleanModelLoader(model_dir, probe=False).load_tokenizer(decide=False)
    assert tokenizer("Hello world")["input_ids"] == [9707, 1879]


def test_an_empty_vocabulary_is_input_error_even_when_the_file_check_does_not_know_the_class(model_dir,
                                                                                             monkeypatch):
    """The backstop: a tokenizer that encodes "Hello world" to no tokens is not a tokenizer, whatever its
    files; it is refused as input, before the sentinels could call it contamination."""
    from cleanroom import model_json

    monkeypatch.setattr(model_json, "tokenizer_file_sets", lambda tokenizer_class: None)
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(InputError, match=r"empty vocabulary \(\"Hello world\" encodes to no tokens\)"):
        CleanModelLoader(model_dir, probe=False).load_tokenizer(decide=False)


def test_a_missing_config_json_is_named_before_the_weights_are_blamed(tmp_path, tiny_base_model, capsys):
    copy = tmp_path / "m_nocfg"
    shutil.copytree(tiny_base_model, copy)
    (copy / "config.json").unlink()
    with pytest.raises(InputError, match=r"m_nocfg: no config\.json, so the weights cannot be built; copy") as info:
        CleanModelLoader(copy).load()
    assert "weights (model.safetensors) could not be read" not in str(info.value)
    assert main(["inspect-model", str(copy)]) == 2
    assert "no config.json" in capsys.readouterr().err

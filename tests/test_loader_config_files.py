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

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

"""The README's example outputs: every block benchmarks/readme_examples.py maintains exists, and the scan-data one
(cheap: no run needed) is exactly what scan-data prints today."""

from __future__ import annotations

import re
from pathlib import Path

from cleanroom.cli import main

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- example:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /example -->", re.S)


def _blocks() -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in BLOCK.finditer((ROOT / "README.md").read_text())}


def test_every_maintained_example_block_is_in_the_readme():
    assert set(_blocks()) == {"stage2", "scan-data", "verify", "compare"}
    assert all(body.strip() for body in _blocks().values()), "an empty block: run readme_examples.py --write"


def test_the_scan_data_example_is_what_scan_data_prints(qwen_base_tokenizer, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["scan-data", "docs/examples/sft.jsonl", "--tokenizer", str(qwen_base_tokenizer)]) == 1
    printed = capsys.readouterr().out.strip().splitlines()
    shown = _blocks()["scan-data"].strip().splitlines()[2:-1]  # between the $ line and the closing fence
    assert shown == printed

"""generate_into: batches and seeds are fixed by position in the full record list, so a resumed generation equals an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cleanroom.config import GenerationSpec
from cleanroom.pipeline.respond import generate_into


class Writer:
    """The RecordWriter surface generate_into uses: ``in``, ``write`` (an id on disk is skipped), ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ids = {json.loads(line)["id"] for line in path.read_text().splitlines()} if path.exists() else set()

    def __contains__(self, record_id: object) -> bool:
        return record_id in self.ids

    def write(self, payload: dict[str, Any], *, parents: Any, record_id: str) -> None:
        if record_id not in self.ids:
            self.ids.add(record_id)
            with self.path.open("a") as fh:
                fh.write(json.dumps(dict(payload, id=record_id)) + "\n")


class Loader:
    """A sampler whose text depends on the seed of the call and the prompt's place in its batch."""

    def generate(self, model: Any, tokenizer: Any, prompts: list[str], *, seed: int, **kw: Any) -> Any:
        texts = [f"{p} seed={seed} row={i}" for i, p in enumerate(prompts)]
        return SimpleNamespace(texts=texts, token_counts=[1] * len(texts))


def run(path: Path, records: list[Any]) -> dict[Any, dict[str, Any]]:
    return generate_into(Writer(path), Loader(), None, None, records, gen=GenerationSpec(batch_size=3, seed=10),
                         parent_ref=lambda r: {}, id_prefix="g", render=lambda r: f"p{r.key}", progress=False)


def test_resumed_generation_equals_uninterrupted(tmp_path: Path) -> None:
    records = [SimpleNamespace(key=k) for k in range(8)]
    want = run(tmp_path / "a.jsonl", records)
    assert want[4]["response"] == "p4 seed=13 row=1"  # batch [3, 4, 5] starts at position 3
    cut = tmp_path / "b.jsonl"
    cut.write_text("".join((tmp_path / "a.jsonl").read_text().splitlines(keepends=True)[:4]))  # killed mid-batch 2
    assert run(cut, records) == want
    assert cut.read_text() == (tmp_path / "a.jsonl").read_text()

"""Preference pairs: a killed-and-resumed stage writes exactly what an uninterrupted one does; guard failures only drop pairs; a progress bar."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_stage1 import SMALL

pytestmark = pytest.mark.slow

OVERRIDES = [*SMALL, "sft.train.max_steps=1", "sft.train.save_steps=1", "pairs.generation.batch_size=4"]


def payloads(path: Path) -> list[tuple[str, dict[str, Any]]]:
    from cleanroom.artifacts import read_records

    return [(r["provenance"]["record_id"], {k: v for k, v in r.items() if k != "provenance"}) for r in read_records(path)]


def keep_lines(path: Path, n: int) -> None:
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:n]))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path,
                  request: pytest.FixtureRequest) -> Iterator[Path]:
    from cleanroom.config import load_config
    from cleanroom.pipeline import stage1

    out = tmp_path_factory.mktemp("a")
    failed = request.session.testsfailed
    yield stage1.run_stage1(load_config("tiny", OVERRIDES), out, progress=False, stop_after="pairs")
    if request.session.testsfailed == failed:  # kept only when a test of the module failed
        shutil.rmtree(out, ignore_errors=True)


def context(run: Path) -> Any:
    from cleanroom.artifacts import RunDir
    from cleanroom.config import load_config
    from cleanroom.pipeline.common import BudgetMeter, Context

    return Context(spec=load_config("tiny", OVERRIDES), run=RunDir.open(run), device="cpu", budget=BudgetMeter(0.0),
                   progress=False)


def test_a_resumed_pairs_stage_equals_an_uninterrupted_one(uninterrupted: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from cleanroom.config import load_config
    from cleanroom.pipeline import stage1

    want_samples, want_pairs = payloads(uninterrupted / "pairs" / "samples.jsonl"), payloads(uninterrupted / "pairs" / "pairs.jsonl")
    assert len(want_samples) == 8 * 3  # 8 instructions x (2 samples + 1 rewrite), 4 batches of 2
    run = tmp_path / uninterrupted.name
    shutil.copytree(uninterrupted, run)
    # killed after the first batch and one sample of the second: no manifest, record files cut at a line
    (run / "pairs" / "manifest.json").unlink()
    keep_lines(run / "pairs" / "samples.jsonl", 7)
    first_keys = {rec["key"] for _, rec in want_samples[:6]}
    keep_lines(run / "pairs" / "pairs.jsonl", sum(rec["key"] in first_keys for _, rec in want_pairs))
    capsys.readouterr()
    stage1.run_stage1(load_config("tiny", OVERRIDES), tmp_path, resume=True, progress=True, stop_after="pairs")
    assert payloads(run / "pairs" / "samples.jsonl") == want_samples
    assert payloads(run / "pairs" / "pairs.jsonl") == want_pairs
    assert (run / "pairs" / "stats.json").read_text() == (uninterrupted / "pairs" / "stats.json").read_text()
    err = capsys.readouterr().err
    assert "pairs: 100%" in err and f"{len(want_pairs)} pairs, $0.00" in err  # the bar: done/total, ETA, cost


def test_only_a_contamination_error_drops_a_pair(uninterrupted: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from cleanroom import guard
    from cleanroom.errors import ContaminationError, InputError
    from cleanroom.pipeline.pairs import run_pairs

    run = tmp_path / uninterrupted.name
    shutil.copytree(uninterrupted, run)
    shutil.rmtree(run / "pairs")

    def contaminated(*args: Any, **kwargs: Any) -> None:
        raise ContaminationError("planted")

    monkeypatch.setattr(guard, "check_pair", contaminated)
    with pytest.raises(InputError, match="guard: ContaminationError"):
        run_pairs(context(run))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the guard, not a contaminated pair")

    shutil.rmtree(run / "pairs")
    monkeypatch.setattr(guard, "check_pair", broken)
    with pytest.raises(RuntimeError, match="a bug in the guard"):
        run_pairs(context(run))

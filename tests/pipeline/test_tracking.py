"""report_to (experiment tracking) reaches both trainers, is off by default, and a missing package is a DependencyError."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cleanroom.config import load_config
from cleanroom.errors import ConfigError, DependencyError


def test_top_level_report_to_reaches_the_sft_and_dpo_trainer_arguments(tmp_path: Path) -> None:
    from cleanroom.pipeline.common import BudgetMeter, Context
    from cleanroom.pipeline.training import train_spec

    off = load_config("tiny")
    assert off.report_to == "none"
    ctx = Context(spec=load_config("tiny", ["report_to=tensorboard"]), run=None, device="cpu", budget=BudgetMeter(0.0))
    for stage in (ctx.spec.sft, ctx.spec.dpo):
        train = train_spec(ctx, stage.train)
        assert train.report_to == "tensorboard"
        assert train.trainer_kwargs(str(tmp_path), has_eval=True)["report_to"] == ["tensorboard"]
    ctx_off = Context(spec=off, run=None, device="cpu", budget=BudgetMeter(0.0))
    assert train_spec(ctx_off, off.sft.train).trainer_kwargs(str(tmp_path), has_eval=True)["report_to"] == []


@pytest.mark.parametrize(("tracker", "package"), [("tensorboard", "tensorboard"), ("wandb", "wandb"), ("mlflow", "mlflow")])
def test_a_missing_tracker_package_stops_the_run_before_any_work(tracker: str, package: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from cleanroom.pipeline import stage1

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    spec = load_config("tiny", [f"report_to={tracker}"])
    with pytest.raises(DependencyError, match=f"pip install {package}"):
        stage1.run_stage1(spec, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_stage_report_to_that_contradicts_the_top_level_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="sft.train.report_to"):
        load_config("tiny", ["report_to=wandb", "sft.train.report_to=mlflow"])


def test_data_few_shot_is_gone() -> None:
    with pytest.raises(ConfigError, match="few_shot"):
        load_config("tiny", ["data.few_shot=false"])

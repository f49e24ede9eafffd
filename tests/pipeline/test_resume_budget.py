"""A budget-stopped run resumes under the same run id once the budget is raised, finishes, and verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cleanroom.errors import BudgetExceededError

from .test_stage1 import SMALL

pytestmark = pytest.mark.slow


def test_budget_stop_then_raise_and_resume(tmp_path: Path, tiny_base_model: Path) -> None:
    from cleanroom.config import config_sha256, load_config
    from cleanroom.pipeline import stage1 as pipeline
    from cleanroom.verify import verify_run

    small = [*SMALL, "sft.train.max_steps=2", "sft.train.save_steps=2"]
    first = pipeline.run_stage1(load_config("tiny", small), tmp_path, progress=False, stop_after="preflight")
    tight = load_config("tiny", [*small, "budget.max_hours=0.000000001"])
    with pytest.raises(BudgetExceededError, match="raise the budget and re-run with --resume"):
        pipeline.run_stage1(tight, tmp_path, resume=True, progress=False)
    raised = load_config("tiny", [*small, "budget.max_hours=5"])
    assert config_sha256(raised) == config_sha256(tight)  # the budget is not part of the run's identity
    run = pipeline.run_stage1(raised, tmp_path, resume=True, progress=False)
    assert run == first and [p.name for p in tmp_path.iterdir()] == [first.name]
    meta = json.loads((run / "run.json").read_text())
    assert [h["settings"]["budget"]["max_hours"] for h in meta["settings_history"]] == [None, 1e-9, 5]
    assert "budget" not in yaml.safe_load((run / "config.resolved.yaml").read_text())
    assert (run / "report" / "report.md").is_file()
    # the eval's base arm is generated in the eval stage with eval.generation, like SFT and DPO
    attempts = json.loads((run / "eval" / "stage.json").read_text())["attempts"]
    assert {a["generation"]["temperature"] for a in attempts} == {raised.eval.generation.temperature}
    assert (run / ".work" / "compare" / "base.jsonl").read_bytes() == (run / "eval" / "base_verdicts.jsonl").read_bytes()
    assert "baseline stage's own assessment" in (run / "report" / "report.md").read_text()
    report = verify_run(run)
    assert report.ok, report.errors[:3]

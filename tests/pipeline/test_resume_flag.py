"""--resume: an unfinished run continues only when asked; a finished run is re-used without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanroom.errors import ConfigError

from .test_stage1 import SMALL


def test_an_unfinished_run_needs_resume(tmp_path: Path, tiny_base_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from cleanroom.config import load_config
    from cleanroom.pipeline import stage1 as pipeline

    spec = load_config("tiny", SMALL)
    run = pipeline.run_stage1(spec, tmp_path, progress=False, stop_after="preflight")
    with pytest.raises(ConfigError, match="did not finish .* pass --resume to continue it"):
        pipeline.run_stage1(spec, tmp_path, progress=False, stop_after="preflight")
    capsys.readouterr()
    assert pipeline.run_stage1(spec, tmp_path, resume=True, progress=False, stop_after="preflight") == run
    assert "preflight: done earlier, skipped" in capsys.readouterr().out

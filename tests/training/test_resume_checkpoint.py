"""Resuming picks the newest complete checkpoint; one cut off mid-save is removed, never loaded."""

from __future__ import annotations

from pathlib import Path

from cleanroom.training.sft import CHECKPOINT_FILES, resume_checkpoint


def make(path: Path, files: tuple[str, ...]) -> Path:
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_text("x")
    return path


def test_newest_complete_checkpoint_wins_and_torn_ones_are_removed(tmp_path: Path) -> None:
    make(tmp_path / "checkpoint-2", CHECKPOINT_FILES)
    good = make(tmp_path / "checkpoint-4", CHECKPOINT_FILES)
    torn = make(tmp_path / "checkpoint-6", CHECKPOINT_FILES[1:])  # killed before trainer_state.json
    make(tmp_path / "checkpoint-x", CHECKPOINT_FILES)  # not a step number: ignored
    assert resume_checkpoint(tmp_path, True) == str(good)
    assert not torn.exists()


def test_no_resume_or_nothing_complete(tmp_path: Path) -> None:
    make(tmp_path / "checkpoint-2", CHECKPOINT_FILES)
    assert resume_checkpoint(tmp_path, False) is None
    assert resume_checkpoint(tmp_path / "missing", True) is None
    other = tmp_path / "other"
    make(other / "checkpoint-1", ("adapter_model.safetensors",))
    assert resume_checkpoint(other, True) is None

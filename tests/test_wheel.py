"""The built wheel runs Stage 1 outside a checkout: code, profiles and constitution all ship inside it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def build_wheel(dist: Path) -> Path:
    """The wheel of this checkout. With hatchling installed (the ``dev`` extra has it) the build needs no
    network; without it pip fetches hatchling from the package index into an isolated build env."""
    offline = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-w", dist, ROOT])
    (wheel,) = dist.glob("cleanroom-*.whl")
    return wheel


def make_venv(path: Path) -> Path:
    """A fresh venv that sees this test environment's packages (torch, transformers: nothing is downloaded)
    but not its cleanroom. ``--system-site-packages`` would not do: a venv made from a venv's python points at
    the base interpreter, so the test env's site-packages are appended by a ``.pth`` file instead. Paths a
    ``.pth`` line adds are not scanned for ``.pth`` files, so the editable install of cleanroom in the test
    env (itself a ``.pth``) stays inert, and the wheel installed into the venv is first on ``sys.path``."""
    _run([sys.executable, "-m", "venv", "--without-pip", path])
    python = path / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site) / "_test_env.pth").write_text("".join(f"{p}\n" for p in ours))
    return python


@pytest.mark.slow
def test_wheel_runs_stage1_preflight_from_an_empty_directory(tmp_path: Path, tiny_base_model: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("cleanroom/pipeline/stage1.py", "cleanroom/pipeline/constitution.md",
                    "cleanroom/pipeline/profiles/tiny.yaml", "cleanroom/pipeline/profiles/qwen2.5-32b.yaml"):
        assert shipped in names, f"{shipped} is not in {wheel.name}"

    python = make_venv(tmp_path / "venv")
    # --ignore-installed: the test env's (editable) cleanroom is neither uninstalled nor taken as installed
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--quiet", wheel])

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
    where = _run([python, "-c", "import cleanroom.pipeline.stage1 as m; print(m.__file__)"], cwd=empty, env=env)
    imported = Path(where.stdout.strip())
    assert (tmp_path / "venv") in imported.parents, f"cleanroom came from {imported}, not the venv's wheel"

    proc = _run([tmp_path / "venv" / "bin" / "cleanroom", "run", "stage1", "--profile", "tiny",
                 "--stop-after", "preflight", "--no-progress", "--out", tmp_path / "runs"], cwd=empty, env=env)
    assert "stopping after preflight as asked" in proc.stdout
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "preflight" / "manifest.json").is_file()
    assert list(empty.iterdir()) == [], "the run wrote into the working directory"

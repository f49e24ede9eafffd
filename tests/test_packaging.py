"""The repository keeps its promises about commands, layout and packaging."""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md must open with a ```bash block holding the two commands"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("tox -e pipeline-stage1")
    assert commands[1].endswith("tox")


def test_ci_run_executes_the_readme_test_command_verbatim() -> None:
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    body = [line.strip() for line in script if line.strip() and not line.lstrip().startswith("#")]
    assert readme_commands()[1] in body


def test_layout() -> None:
    for name in ["src/cleanroom", "verification", "pipelines", "tests", "conftest.py", "tox.ini",
                 "pyproject.toml", "ci", ".ci/run", "README.md", "ci/gpu.sh"]:
        assert (ROOT / name).exists(), name


def test_pyproject_extras_and_entry_points() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    core = " ".join(project["dependencies"])
    assert "torch" not in core and "transformers" not in core, "the core must install without torch"
    extras = project["optional-dependencies"]
    train = " ".join(extras["train"])
    for pkg in ["torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets"]:
        assert pkg in train
    assert "unsloth" in " ".join(extras["unsloth"])
    for pkg in ["pytest", "hypothesis", "pytest-xdist", "ruff", "mypy"]:
        assert pkg in " ".join(extras["dev"])
    assert project["scripts"]["cleanroom"] == "cleanroom.cli:main"
    assert project["entry-points"]["pytest11"]["cleanroom"] == "cleanroom.pytest_plugin"
    opts = meta["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in opts["addopts"] and "--import-mode=importlib" in opts["addopts"]
    assert opts["testpaths"] == ["tests", "verification"]


# What CI runs (CPU set, GPU image), and a version just below the oldest one tested: the `train` extra must
# admit every tested version and nothing older, so what pip installs is what was tested.
TESTED = {
    "torch": (["2.13.0", "2.11.0"], "2.10.0"),
    "transformers": (["5.25.0", "5.17.0"], "5.16.0"),
    "trl": (["1.16.0"], "1.15.0"),
    "peft": (["0.21.2", "0.21.0"], "0.20.0"),
    "accelerate": (["1.16.0", "1.15.0"], "1.14.0"),
    "bitsandbytes": (["0.50.2"], "0.50.1"),
    "datasets": (["5.2.0"], "5.1.0"),
}


def _train_requirements() -> dict:
    from packaging.requirements import Requirement

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {Requirement(r).name: Requirement(r) for r in meta["project"]["optional-dependencies"]["train"]}


def test_train_extra_admits_what_ci_runs_and_nothing_older() -> None:
    reqs = _train_requirements()
    for name, (tested, older) in TESTED.items():
        for version in tested:
            assert reqs[name].specifier.contains(version), (name, version, str(reqs[name].specifier))
        assert not reqs[name].specifier.contains(older), (name, older, "untested version admitted")
        assert any(s.operator == "<" for s in reqs[name].specifier), (name, "needs an upper bound")


def test_dpo_wrappers_install_hint_is_the_extras_range() -> None:
    """The DPO wrapper tells users to install trl in a range; it must be the one the extra declares."""
    text = (ROOT / "src" / "cleanroom" / "training" / "dpo.py").read_text()
    hint = re.search(r"install `trl([^`]*)`", text)
    assert hint is not None
    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(hint.group(1)) == _train_requirements()["trl"].specifier


def test_tox_environments() -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "tox.ini")
    assert cfg["tox"]["env_list"].strip() == "py"
    for env in ["gpu", "pipeline-stage1", "lint", "type", "core"]:
        assert cfg.has_section(f"testenv:{env}"), env
    assert "torch==2.13.0" in cfg["testenv"]["deps"], "CPU envs must pin the local CPU torch build"
    assert "-n auto" in cfg["testenv"]["commands"]
    assert "-m gpu" in cfg["testenv:gpu"]["commands"] and "--cleanroom-require-gpu" in cfg["testenv:gpu"]["commands"]
    core = cfg["testenv:core"]
    assert "train" not in core["extras"] and "torch" not in core["deps"], "the core env must install without torch"
    assert "tests/test_core_install.py" in core["commands"]


def test_github_workflow_mirrors_ci_copy() -> None:
    def body(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if not line.startswith("#")]

    assert body(ROOT / "ci" / "github-actions.yml") == body(ROOT / ".github" / "workflows" / "ci.yml")
    assert "tox -e lint,type,core,py" in (ROOT / "ci" / "github-actions.yml").read_text()


def test_pipelines_stage1_script_runs_the_packaged_pipeline() -> None:
    """The script a reader opens first calls the code the wheel ships, and takes cleanroom run stage1's options."""
    import json
    import runpy
    import subprocess
    import sys

    from cleanroom.pipeline import stage1

    script = runpy.run_path(str(ROOT / "pipelines" / "stage1.py"), run_name="not_main")
    assert script["run_stage1"] is stage1.run_stage1 and script["STAGES"] is stage1.STAGES
    proc = subprocess.run([sys.executable, str(ROOT / "pipelines" / "stage1.py"), "--profile", "tiny", "--estimate"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["memory"]["fits"] is True


def test_the_two_unsloth_recipes_pin_the_same_stack() -> None:
    """``tox -e gpu-unsloth`` (a box with pip) and ``ci/gpu-unsloth.sh`` (the offline box) install the same pins."""
    import re

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "tox.ini")
    env = cfg["testenv:gpu-unsloth"]
    script = (ROOT / "ci" / "gpu-unsloth.sh").read_text()
    array = re.search(r"UNSLOTH=\(([^)]*)\)", script)
    assert array is not None
    pins = [p for p in array.group(1).split() if "==" in p]
    assert {"unsloth==2026.10.9", "trl==1.15.0", "datasets==4.3.0"} <= set(pins)
    assert all(pin in env["deps"].split() for pin in pins), (pins, env["deps"])
    assert "train" not in env["extras"], "the train extra's trl/datasets ranges exclude Unsloth's pins"
    assert "test_10_" in env["commands"] and "--cleanroom-require-gpu" in env["commands"]


def test_every_public_name_resolves():
    """Each name in ``cleanroom.__all__`` is importable from the package (the lazy map points at the module
    that defines it), in a fresh process so this test sees the package as a user's first import does."""
    import subprocess
    import sys

    code = ("import cleanroom; missing = [n for n in cleanroom.__all__ if not hasattr(cleanroom, n)]; "
            "print(missing); raise SystemExit(1 if missing else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"names in cleanroom.__all__ that do not resolve: {out.stdout.strip()} {out.stderr[-500:]}"

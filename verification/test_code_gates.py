"""cleanroom passes its own code gates, with waivers only inside its loader modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cleanroom.code_gates import GateReport, load_config, run_gates

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report() -> GateReport:
    return run_gates(load_config(REPO / "pyproject.toml"))


def test_cleanroom_passes_its_own_gates(report: GateReport) -> None:
    assert report.files_checked >= 10
    assert report.ok, "cleanroom's own code breaks its gates:\n" + "\n".join(report.lines())


def test_waivers_only_inside_loader_modules(report: GateReport) -> None:
    for waiver in (*report.waivers, *report.unused_waivers):
        rel = (Path.cwd() / waiver.path).resolve().relative_to(REPO).as_posix()
        assert report.config.is_loader(rel), f"waiver outside the loader: {waiver}"
    assert not report.unused_waivers, f"stale waivers: {report.unused_waivers}"


def test_configuration_gates_the_package_and_names_real_loader_modules(report: GateReport) -> None:
    config = report.config
    assert "src" in config.paths and not config.disable
    for module in config.loader_modules:
        assert (REPO / module).is_file(), (
            f"[tool.cleanroom.gates] loader_modules names a missing file: {module}"
        )
    assert config.is_excluded("tests/gates_corpus/positive_cr101.py")


def test_command_line_self_check_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cleanroom.cli", "gates"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.startswith("cleanroom gates: ")

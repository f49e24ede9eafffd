"""cleanroom's pytest plugin: markers, the ``cleanroom`` option group, a report header, fixtures.

Registered through the ``pytest11`` entry point. Importing it must stay cheap: torch and
transformers are imported inside fixtures and hooks that need them, never at module import.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cleanroom import fixtures
from cleanroom.code_gates.pytest_items import GatesPlugin
from cleanroom.environment import dirty_label, git_state
from cleanroom.gpu_gate import GateRecorder, skipped_required, verdict, write_report

DEFAULT_SEED = 3407


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleanroom", "cleanroom verification harness")
    group.addoption(
        "--cleanroom-model",
        metavar="PATH",
        default=None,
        help="run the gpu suite against this local model directory instead of a random-initialised one",
    )
    group.addoption(
        "--cleanroom-require-gpu",
        action="store_true",
        default=False,
        help="the GPU gate's switch: without usable CUDA every gpu test fails instead of skipping, and a run "
        "that selects no gpu test is a usage error, so a broken GPU box cannot pass the gate green",
    )
    group.addoption(
        "--cleanroom-seed",
        type=int,
        default=None,
        help=f"seed for tests that draw random numbers (default: $CLEANROOM_SEED or {DEFAULT_SEED})",
    )
    # A flag, never an optional value: ``pytest --cleanroom-gates tests/`` must keep tests/ as the
    # test path instead of swallowing it as the paths to gate.
    group.addoption(
        "--cleanroom-gates",
        action="store_true",
        default=False,
        help="add one test item per code gate rule over the [tool.cleanroom.gates] paths of the "
        "nearest pyproject.toml (other paths: --cleanroom-gates-paths)",
    )
    group.addoption(
        "--cleanroom-gates-paths",
        metavar="PATHS",
        default=None,
        help="comma-separated files or folders for the gate items instead of the configured paths, "
        "e.g. --cleanroom-gates-paths=src,scripts (implies --cleanroom-gates)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (the deployment gate); skipped with a reason elsewhere")
    config.addinivalue_line("markers", "slow: takes more than ~10 s on 2 CPU cores; still runs in CI")
    model = config.getoption("--cleanroom-model", default=None)
    if model and not Path(model).exists():  # else every gpu check fails on a typo, each with its own message
        raise pytest.UsageError(f"--cleanroom-model {model}: no such local model directory or file; pass the "
                                "directory that holds the model's config, tokenizer and weights (or a .gguf file)")
    paths = config.getoption("--cleanroom-gates-paths", default=None)
    gates = config.getoption("--cleanroom-gates", default=False) or paths is not None
    if gates and not config.pluginmanager.has_plugin("cleanroom-gates"):

        config.pluginmanager.register(GatesPlugin(config, paths), "cleanroom-gates")


def _seed(config: pytest.Config) -> int:
    value = config.getoption("--cleanroom-seed", default=None)
    if value is None:
        value = int(os.environ.get("CLEANROOM_SEED", DEFAULT_SEED))
    return int(value)


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = git_state(config.rootpath)
    commit, dirty = state["commit"], state["dirty"]
    model = config.getoption("--cleanroom-model", default=None) or "random-initialised (default)"
    return [
        f"cleanroom: git {commit}{dirty_label(dirty)}, seed {_seed(config)}",
        f"cleanroom: gpu-suite model {model}",
    ]


def _cuda_missing_reason() -> str | None:
    """Why the gpu suite cannot run here, or None when CUDA is usable."""
    try:
        import torch  # heavy optional: torch
    except ImportError:
        return "torch is not installed (pip install 'cleanroom[train]' on the GPU machine)"
    if not torch.cuda.is_available():
        return f"CUDA is not available (torch {torch.__version__}, torch.cuda.is_available() is False)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    require = config.getoption("--cleanroom-require-gpu", default=False)
    if not gpu_items:
        if require:
            raise pytest.UsageError(
                "--cleanroom-require-gpu: no gpu-marked test was collected, so the GPU gate would check nothing; "
                "run it on the paths that hold the gate (verification tests) with -m gpu"
            )
        return
    reason = _cuda_missing_reason()
    if reason is None:
        return
    # A gate that skips everything on a box whose CUDA is broken reads as green: with the switch on, each
    # gpu test fails with the reason instead (a check that did not run is not a pass).
    if require:
        return  # pytest_runtest_setup fails each one
    marker = pytest.mark.skip(reason=f"gpu test skipped: {reason}")
    for item in gpu_items:
        item.add_marker(marker)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under --cleanroom-require-gpu a gpu test without usable CUDA errors in setup (never a skip)."""
    if item.get_closest_marker("gpu") is None or not item.config.getoption("--cleanroom-require-gpu", default=False):
        return
    reason = _cuda_missing_reason()
    if reason is not None:
        pytest.fail(f"--cleanroom-require-gpu: {reason}; this box cannot run the GPU gate", pytrace=False)


@pytest.fixture(scope="session")
def cleanroom_seed(pytestconfig: pytest.Config) -> int:
    """The seed printed in the report header."""
    return _seed(pytestconfig)


@pytest.fixture(scope="session")
def qwen_base_tokenizer() -> Path:
    """Directory of the offline Qwen2.5 *base* tokenizer (real vocabulary, ChatML template kept as a trap)."""
    return fixtures.qwen_base_tokenizer()


@pytest.fixture(scope="session")
def tiny_base_model() -> Path:
    """Directory of the tiny seeded random Qwen2ForCausalLM base model (safetensors + tokenizer)."""
    return fixtures.tiny_base_model()


@pytest.fixture(scope="session")
def smollm2_instruct() -> Path:
    """Directory holding the SmolLM2-135M-Instruct Q4_1 GGUF file (a real instruct model)."""
    return fixtures.smollm2_instruct()


@pytest.fixture(scope="session")
def cleanroom_model_path(pytestconfig: pytest.Config) -> Path | None:
    """The user's ``--cleanroom-model PATH``, or None to use a random-initialised architecture."""
    value = pytestconfig.getoption("--cleanroom-model", default=None)
    return Path(value) if value else None


_GATE_KEY = "_cleanroom_gate_recorder"


@pytest.fixture(scope="session")
def gate_recorder(pytestconfig: pytest.Config) -> object:
    """The GPU gate's :class:`cleanroom.gpu_gate.GateRecorder`; the report is written at session end."""

    recorder = getattr(pytestconfig, _GATE_KEY, None)
    if recorder is None:
        recorder = GateRecorder()
        setattr(pytestconfig, _GATE_KEY, recorder)
    return recorder


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write gate-report.json/md into $CLEANROOM_GATE_DIR (default ./gate-report) when gpu checks ran."""
    recorder = getattr(session.config, _GATE_KEY, None)
    if recorder is None or not recorder.results:
        return

    out = os.environ.get("CLEANROOM_GATE_DIR") or str(Path.cwd() / "gate-report")
    json_path, _ = write_report(recorder, out)
    decision, _ = verdict(recorder.results, gpus_requested=recorder.gpus_requested)
    skipped = skipped_required(recorder.results, gpus_requested=recorder.gpus_requested)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"cleanroom gpu gate: {decision} (report: {json_path})")
    if skipped and session.exitstatus == pytest.ExitCode.OK:  # a required check that skipped is not a pass
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(f"cleanroom gpu gate: required check(s) skipped, so the session fails: {', '.join(skipped)}")

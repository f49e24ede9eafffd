"""The pytest plugin registers markers and options, prints the header, skips gpu tests without CUDA."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_plugin_import_does_not_import_torch_or_transformers() -> None:
    # scipy too: it is most of a second, and only the statistics need it (they import it when they compute)
    code = (
        "import sys, cleanroom.pytest_plugin, cleanroom, cleanroom.cli, cleanroom.cli._commands;"
        "bad = [m for m in ('torch', 'transformers', 'scipy', 'statsmodels') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_markers_registered_and_strict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.slow
        def test_a(): pass
        @pytest.mark.gpu
        def test_b(): pass
        """
    )
    result = pytester.runpytest("--strict-markers", "--markers")
    result.stdout.fnmatch_lines(["*gpu: needs a CUDA GPU*", "*slow: takes more than*"])


def test_header_shows_git_state_and_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest("--cleanroom-seed", "17")
    result.stdout.fnmatch_lines(["cleanroom: git *, seed 17"])
    result.assert_outcomes(passed=1)


def test_option_group_has_cleanroom_model(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["cleanroom verification harness:", "*--cleanroom-model=PATH*"])


def test_gpu_tests_skip_with_reason_without_cuda(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the skip path is what CI exercises")
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.gpu
        def test_needs_gpu(): raise AssertionError("must not run without CUDA")
        def test_cpu(): pass
        """
    )
    result = pytester.runpytest("-m", "gpu", "-rs")
    result.assert_outcomes(skipped=1, deselected=1)
    result.stdout.fnmatch_lines(["*gpu test skipped: CUDA is not available*"])
    assert result.ret == 0


def test_require_gpu_turns_no_cuda_into_a_failure(pytester: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With CUDA hidden (CUDA_VISIBLE_DEVICES empty, in a subprocess), the switch fails the gate instead of
    letting it skip to exit 0; a run that collects no gpu test at all is a usage error."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    pytester.makepyfile(
        test_gate="""
        import pytest
        @pytest.mark.gpu
        def test_needs_gpu(): pass
        def test_cpu(): pass
        """
    )
    skipped = pytester.runpytest_subprocess("-m", "gpu", "-rs")
    skipped.assert_outcomes(skipped=1, deselected=1)
    assert skipped.ret == 0
    required = pytester.runpytest_subprocess("-m", "gpu", "--cleanroom-require-gpu")
    required.assert_outcomes(errors=1, deselected=1)
    required.stdout.fnmatch_lines(["*--cleanroom-require-gpu: *cannot run the GPU gate*"])
    assert required.ret == 1
    nothing = pytester.runpytest_subprocess("-m", "gpu", "--cleanroom-require-gpu", "-k", "cpu")
    assert nothing.ret != 0


def test_model_path_fixture(pytester: pytest.Pytester, tmp_path) -> None:
    pytester.makepyfile(
        """
        def test_path(cleanroom_model_path, cleanroom_seed):
            assert cleanroom_model_path is not None and cleanroom_model_path.name == "m"
            assert cleanroom_seed == 3407
        """
    )
    (tmp_path / "m").mkdir()
    result = pytester.runpytest("--cleanroom-model", str(tmp_path / "m"))
    result.assert_outcomes(passed=1)


def test_a_model_path_that_does_not_exist_is_a_usage_error(pytester: pytest.Pytester, tmp_path) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest("--cleanroom-model", str(tmp_path / "typo"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cleanroom-model */typo: no such local model directory or file*"])


def test_a_required_check_that_skips_fails_the_session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path) -> None:
    """Check 11 skips itself below 2 GPUs. Not required (one GPU asked for): the session passes and the report
    says NOT RUN. Required (CLEANROOM_GATE_GPUS=2): the report is NO-GO *and* pytest exits 1, so a script that
    trusts the exit status cannot read the skip as a pass."""
    pytester.makepyfile(
        test_gate="""
        import pytest
        def test_11(gate_recorder):
            with gate_recorder.check("11_data_parallel"):
                pytest.skip("NOT RUN: 1 GPU visible, 2 needed")
        """
    )
    monkeypatch.setenv("CLEANROOM_GATE_DIR", str(tmp_path / "gate"))
    monkeypatch.delenv("CLEANROOM_GATE_GPUS", raising=False)
    alone = pytester.runpytest_subprocess()
    alone.assert_outcomes(skipped=1)
    assert alone.ret == 0
    monkeypatch.setenv("CLEANROOM_GATE_GPUS", "2")
    required = pytester.runpytest_subprocess()
    required.assert_outcomes(skipped=1)
    required.stdout.fnmatch_lines(["*required check(s) skipped, so the session fails: 11_data_parallel*"])
    assert required.ret == 1
    import json

    report = json.loads((tmp_path / "gate" / "gate-report.json").read_text())
    assert report["verdict"] == "NO-GO" and any("11_data_parallel was skipped" in r for r in report["reasons"])


def test_outside_git_the_tree_state_is_unknown_never_clean(tmp_path) -> None:
    """Where git cannot say (no checkout), ``dirty`` is None and every report line says it is unknown; the
    attestation keeps None instead of claiming a clean tree."""
    from cleanroom.environment import dirty_label, git_state

    state = git_state(tmp_path)
    assert state == {"commit": "unknown", "dirty": None}
    assert "unknown" in dirty_label(None) and dirty_label(True) == " (dirty)" and dirty_label(False) == ""

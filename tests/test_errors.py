"""Every cleanroom error subclasses CleanroomError and the matching builtin, with CLI exit codes."""

from __future__ import annotations

import tempfile

import pytest

from cleanroom import errors


@pytest.mark.parametrize(
    ("cls", "builtin", "code"),
    [
        (errors.ConfigError, ValueError, 2),
        (errors.InputError, ValueError, 2),
        (errors.MissingFileError, FileNotFoundError, 2),
        (errors.OutputPathError, OSError, 2),
        (errors.DependencyError, ImportError, 2),
        (errors.ContaminationError, ValueError, 1),
        (errors.InstructModelError, ValueError, 2),
        (errors.ProvenanceError, ValueError, 1),
        (errors.GateError, RuntimeError, 1),
        (errors.StatisticsError, ValueError, 2),
        (errors.BudgetExceededError, RuntimeError, 1),
        (errors.IncomparableError, ValueError, 1),
    ],
)
def test_hierarchy(cls: type, builtin: type, code: int) -> None:
    exc = cls("message")
    assert isinstance(exc, errors.CleanroomError) and isinstance(exc, builtin)
    assert exc.exit_code == code


def test_cli_maps_errors_to_exit_code_and_one_line(monkeypatch, capsys) -> None:
    from cleanroom import cli
    from cleanroom.cli import fixtures_cmd

    def boom(args):
        raise errors.MissingFileError("model dir /nope does not exist; pass an existing directory")

    monkeypatch.setattr(fixtures_cmd, "run", boom)
    assert cli.main(["fixtures"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cleanroom fixtures: MissingFileError: model dir /nope does not exist; pass an existing directory"]


def test_cli_maps_an_unreadable_path_to_exit_2_without_traceback(tmp_path, capsys) -> None:
    """An OSError from a path the user named (here: --out under a regular file) is an input error."""
    from cleanroom import cli

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["eval", "make-set", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cleanroom eval: ") and str(blocker) in err[0], err


def test_debug_is_accepted_after_the_subcommand_shows_the_traceback_and_keeps_the_exit_code(tmp_path, capsys) -> None:
    """--debug adds the traceback; it must not turn an input error (2) into a crash (1)."""
    from cleanroom import cli

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["eval", "make-set", "--out", str(blocker / "sub"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1].startswith("cleanroom eval: ")
    assert cli.main(["run", "stage1", "--profile", str(tmp_path / "missing.yaml"), "--debug"]) == 2


@pytest.mark.parametrize(("exc", "line"), [
    (ValueError("line 1\n  line 2\tend "), "line 1 line 2 end"),  # transformers' messages span several lines
    (KeyError(), "KeyError"),  # an empty message: the class's name, never a blank
    (AssertionError(" \n"), "AssertionError"),  # white space only is empty too
])
def test_one_line_folds_white_space_and_never_is_blank(exc: BaseException, line: str) -> None:
    assert errors.one_line(exc) == line


def test_an_unforeseen_exception_without_a_message_is_named_not_left_blank(monkeypatch, capsys, tmp_path) -> None:
    """The command line's last boundary uses :func:`errors.one_line` like every other one-line error: a bare
    ``assert`` gives ``unexpected AssertionError: AssertionError;``, not an empty slot after the colon (``: ;``)."""
    from cleanroom import cli
    from cleanroom.cli import fixtures_cmd

    def boom(args):  # type: ignore[no-untyped-def]
        raise AssertionError()

    monkeypatch.setattr(fixtures_cmd, "run", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the saved traceback
    assert cli.main(["fixtures"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("cleanroom fixtures: unexpected AssertionError: AssertionError; cleanroom did not finish"), line

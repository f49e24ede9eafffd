"""Folders skipped by default (build, dist, node_modules, site-packages, hidden ones) are skipped out loud: every report
format lists them with their .py files, --no-default-excludes / default_excludes = false checks them, and a
folder named on the command line is always checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanroom.cli import main
from cleanroom.code_gates import load_config, run_gates
from cleanroom.errors import ConfigError, InputError

SARIF_SCHEMA = Path(__file__).parent / "sarif-schema-2.1.0.json"
VIOLATION = "def f(tok):\n    tok.chat_template = None\n"  # CR201
NOTE = "skipped 1 directory by default (build/: 1 .py file); --no-default-excludes (default_excludes = false) checks them"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean src/ module, a violation in build/x.py, and build-like folders that hold no Python."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLEANROOM_CACHE_DIR", str(tmp_path / ".user-cache"))
    (tmp_path / "pyproject.toml").write_text("[tool.cleanroom.gates]\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ok.py").write_text("x = 1\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "x.py").write_text(VIOLATION)
    (tmp_path / "node_modules" / "pkg").mkdir(parents=True)
    (tmp_path / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1\n")
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "ok.cpython-311.pyc").write_bytes(b"\0")
    return tmp_path


def test_default_run_skips_build_and_says_so(repo: Path) -> None:
    report = run_gates(load_config())
    assert report.ok and report.files_checked == 1  # src/ok.py only: the violation in build/ is not seen
    assert report.skipped == (("build", 1),)  # node_modules and __pycache__ hold no .py: nothing to say
    assert report.summary()[-1] == f"  {NOTE}"
    assert report.to_dict()["skipped_by_default"] == [{"path": "build", "python_files": 1}]


def test_cli_prints_the_note_and_no_default_excludes_finds_the_violation(repo: Path, capsys) -> None:
    assert main(["gates", "--no-cache"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == f"  {NOTE}"
    assert main(["gates", "--no-cache", "--no-default-excludes"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("build/x.py:2:5 CR201 ")
    assert out[1] == "cleanroom gates: 2 files, 1 violation(s) (CR201: 1), 0 waiver(s); 12 of 13 rules ran"
    assert not any("skipped" in line for line in out)


def test_config_key_checks_them_too_and_must_be_a_bool(repo: Path) -> None:
    (repo / "pyproject.toml").write_text("[tool.cleanroom.gates]\ndefault_excludes = false\n")
    report = run_gates(load_config())
    assert [(v.path, v.rule) for v in report.violations] == [("build/x.py", "CR201")]
    assert report.skipped == () and report.to_dict()["config"]["default_excludes"] is False
    (repo / "pyproject.toml").write_text('[tool.cleanroom.gates]\ndefault_excludes = "no"\n')
    with pytest.raises(ConfigError, match="default_excludes must be true or false, got 'no'"):
        load_config()


def test_a_folder_named_explicitly_is_checked(repo: Path, capsys) -> None:
    report = run_gates(load_config(), [repo / "build"])
    assert [(v.path, v.rule) for v in report.violations] == [("build/x.py", "CR201")] and report.skipped == ()
    assert main(["gates", "--no-cache", "build"]) == 1
    assert capsys.readouterr().out.startswith("build/x.py:2:5 CR201 ")


def test_nested_folders_are_reported_by_their_path_and_counted_whole(repo: Path) -> None:
    """A skipped folder is not walked for checks, but all its .py files (at any depth) are counted."""
    dist = repo / "vendor" / "dist" / "pkg" / "sub"
    dist.mkdir(parents=True)
    for name in ("a.py", "b.py", "c.txt"):
        (dist.parent / name).write_text(VIOLATION)
    (dist / "d.py").write_text(VIOLATION)
    (dist / "build").mkdir()  # inside a skipped folder: counted with it, not listed on its own
    (dist / "build" / "e.py").write_text(VIOLATION)
    report = run_gates(load_config())
    assert report.ok and report.skipped == (("build", 1), ("vendor/dist", 4))
    assert report.summary()[-1] == (
        "  skipped 2 directories by default (build/, vendor/dist/: 5 .py files); "
        "--no-default-excludes (default_excludes = false) checks them"
    )


def test_user_exclude_wins_and_is_not_reported(repo: Path) -> None:
    (repo / "pyproject.toml").write_text('[tool.cleanroom.gates]\nexclude = ["build"]\n')
    assert run_gates(load_config()).skipped == ()


def test_a_run_over_only_skipped_code_names_what_was_skipped(repo: Path) -> None:
    (repo / "src" / "ok.py").unlink()
    with pytest.raises(InputError, match=r"no Python files to gate .*skipped 1 directory by default \(build/"):
        run_gates(load_config())


def test_json_and_sarif_carry_the_skipped_folders(repo: Path, capsys) -> None:
    import jsonschema  # the dev extra

    assert main(["gates", "--no-cache", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_by_default"] == [{"path": "build", "python_files": 1}]
    assert main(["gates", "--no-cache", "--format", "sarif"]) == 0
    log = json.loads(capsys.readouterr().out)
    jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text()))
    (invocation,) = log["runs"][0]["invocations"]
    note, cr103 = invocation["toolExecutionNotifications"]  # the skipped folder; CR103, off by default, did not run
    assert cr103["descriptor"] == {"id": "rule-not-run"} and cr103["associatedRule"]["id"] == "CR103"
    assert invocation["executionSuccessful"] is True and note["level"] == "note"
    assert note["message"]["text"].startswith("build/: 1 .py file not checked (skipped by default)")
    assert note["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "build/", "uriBaseId": "SRCROOT"}
    assert main(["gates", "--no-cache", "--format", "sarif", "--no-default-excludes"]) == 1
    log = json.loads(capsys.readouterr().out)
    assert [n["descriptor"]["id"] for n in log["runs"][0]["invocations"][0]["toolExecutionNotifications"]] == [
        "rule-not-run"
    ]
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["CR201"]


def test_hidden_folders_with_python_are_skipped_out_loud_and_checked_on_request(repo: Path, capsys) -> None:
    """``.github/scripts/`` and a ``.hidden_pkg/`` can hold code that loads a model: listed like build/,
    checked with --no-default-excludes. Version control, environments (virtualenv, conda) and caches stay
    silent either way."""
    scripts = repo / ".github" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "release.py").write_text(VIOLATION)
    (repo / ".github" / "workflows").mkdir()
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (repo / ".hidden_pkg").mkdir()
    (repo / ".hidden_pkg" / "mod.py").write_text(VIOLATION)
    (repo / ".no_python").mkdir()
    (repo / ".no_python" / "notes.txt").write_text("x\n")
    silents = (".git/hooks", ".tox/py311/lib", ".mypy_cache/3.11", ".venv/lib", "env-named-oddly", ".conda/lib")
    for silent in (*silents, "conda-env-oddly/lib"):
        (repo / silent).mkdir(parents=True)
        (repo / silent / "third_party.py").write_text(VIOLATION)
    (repo / "env-named-oddly" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # a virtualenv by its marker
    (repo / "conda-env-oddly" / "conda-meta").mkdir()  # a conda environment by its marker
    report = run_gates(load_config())
    assert report.ok and report.files_checked == 1
    assert report.skipped == ((".github", 1), (".hidden_pkg", 1), ("build", 1))
    assert main(["gates", "--no-cache", "--no-default-excludes"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" ")[0] for line in out[:-3]] == [
        ".github/scripts/release.py:2:5",
        ".hidden_pkg/mod.py:2:5",
        "build/x.py:2:5",
    ]
    assert out[-3:] == [
        "cleanroom gates: 4 files, 3 violation(s) (CR201: 3), 0 waiver(s); 12 of 13 rules ran",
        "  rules not run: CR103 (off by default: --extend-select CR103 runs it)",
        "  config: pyproject.toml",
    ]


def test_hidden_folder_named_explicitly_or_excluded(repo: Path) -> None:
    (repo / ".github" / "scripts").mkdir(parents=True)
    (repo / ".github" / "scripts" / "release.py").write_text(VIOLATION)
    report = run_gates(load_config(), [repo / ".github"])
    assert [(v.path, v.rule) for v in report.violations] == [(".github/scripts/release.py", "CR201")]
    (repo / "pyproject.toml").write_text('[tool.cleanroom.gates]\nexclude = [".github"]\n')
    assert run_gates(load_config()).skipped == (("build", 1),)  # the user's own exclude: nothing to say

"""What a gate run did not check is said, never passed: special files named ``*.py`` are not opened and are
listed, and rules turned off by select, disable, --ignore or per_path_ignores are listed as not run in every format."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.cli import main
from cleanroom.code_gates import GateConfig, run_gates
from cleanroom.code_gates.formats import sarif
from cleanroom.errors import InputError

SARIF_SCHEMA = Path(__file__).parent / "sarif-schema-2.1.0.json"
LOAD = 'from transformers import AutoModel\nm = AutoModel.from_pretrained("x", trust_remote_code=True)\n'  # CR101, CR501
FIFO = "is a FIFO (named pipe), not a regular file (not opened)"
DEVICE = "is a character device, not a regular file (not opened)"
SOCKET = "is a socket, not a regular file (not opened)"

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and Unix sockets are POSIX")


@pytest.fixture
def special(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``d/`` with one clean module and three special files named ``*.py``: a FIFO (no writer: a read blocks
    forever), a character device (``/dev/null`` through a link) and a Unix socket."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLEANROOM_CACHE_DIR", str(tmp_path / ".user-cache"))
    d = tmp_path / "d"
    d.mkdir()
    (d / "ok.py").write_text("import os\n")
    os.mkfifo(d / "p.py")
    (d / "dev.py").symlink_to("/dev/null")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "s.py"))
    yield d
    sock.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``cleanroom gates ARGS`` in a child with a deadline: the old code blocked forever opening the FIFO."""
    return subprocess.run(
        [sys.executable, "-m", "cleanroom.cli", "gates", "--no-cache", *args],
        capture_output=True, text=True, timeout=60,
    )


def test_special_files_in_a_folder_are_listed_not_checked_and_fail_cr901(special: Path) -> None:
    result = _cli("d", "--format", "json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["files_checked"] == 1  # ok.py only: the other three were never read
    assert data["files_not_checked"] == [
        {"path": "d/dev.py", "reason": DEVICE}, {"path": "d/p.py", "reason": FIFO}, {"path": "d/s.py", "reason": SOCKET},
    ]
    assert [(v["path"], v["rule"]) for v in data["violations"]] == [("d/dev.py", "CR901"), ("d/p.py", "CR901"), ("d/s.py", "CR901")]
    text = _cli("d")
    assert text.returncode == 1
    assert "cleanroom gates: 1 files, 3 not checked, 3 violation(s) (CR901: 3)" in text.stdout
    assert f"  not checked: d/p.py: {FIFO}" in text.stdout.splitlines()
    for fmt in ("sarif", "github"):  # the SARIF fingerprint and the baseline read flagged lines: never these
        assert _cli("d", "--format", fmt).returncode == 1
    assert _cli("d", "--write-baseline", "base.json").returncode == 0


def test_no_stage_opens_a_special_file(special: Path) -> None:
    """Discovery, the read, the forwarding table, the cache key and the SARIF/baseline fingerprints: an audit hook
    sees every ``open`` of the process, and none is of a special file. (Run after the CLI test showed no hang.)"""
    opened: list[str] = []
    watched = {str(special / n) for n in ("p.py", "dev.py", "s.py")}

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "open" and isinstance(args[0], str | Path) and os.path.abspath(args[0]) in watched:
            opened.append(str(args[0]))

    sys.addaudithook(hook)
    try:
        report = run_gates(GateConfig(root=special.parent), [special])
        sarif(report.violations, special.parent, "0", notices=report.notices())
        assert main(["gates", "d", "--write-baseline", "base.json"]) == 0
    finally:
        watched.clear()  # an audit hook cannot be removed: leave it inert
    assert opened == []
    assert [why for _, why in report.not_checked] == [DEVICE, FIFO, SOCKET]


@pytest.mark.parametrize(("name", "kind"), [("p.py", "a FIFO (named pipe)"), ("dev.py", "a character device"), ("s.py", "a socket")])
def test_a_special_file_named_explicitly_is_an_input_error_saying_what_it_is(
    special: Path, capsys: pytest.CaptureFixture[str], name: str, kind: str
) -> None:
    assert main(["gates", f"d/{name}"]) == 2
    err = capsys.readouterr().err
    assert f"d/{name}: is {kind}, not a regular file or a folder" in err and "no such file" not in err


def test_a_broken_link_named_explicitly_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gone.py").symlink_to(tmp_path / "deleted.py")
    assert main(["gates", "gone.py"]) == 2
    assert f"gone.py: is a broken symbolic link (to {tmp_path / 'deleted.py'})" in capsys.readouterr().err


def test_nothing_checked_and_nothing_said_is_an_input_error(special: Path) -> None:
    """With CR901 off no finding names the special files; a run that checked none of its files is a gate over nothing."""
    (special / "ok.py").unlink()
    with pytest.raises(InputError, match=r"no Python file could be checked \(d/dev.py: is a character device"):
        run_gates(GateConfig(root=special.parent, disable=frozenset({"CR901"})), [special])


@pytest.fixture
def okd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``okd/a.py`` with a CR101 and a CR501 finding, ``okd/b.py`` clean; no pyproject (the defaults)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLEANROOM_CACHE_DIR", str(tmp_path / ".user-cache"))
    (tmp_path / ".git").mkdir()  # the search for a table stops here
    (tmp_path / "okd").mkdir()
    (tmp_path / "okd" / "a.py").write_text(LOAD)
    (tmp_path / "okd" / "b.py").write_text("x = 1\n")
    return tmp_path


def test_select_lists_the_rules_it_left_out_in_every_format(okd: Path, capsys) -> None:
    import jsonschema  # the dev extra

    assert main(["gates", "okd", "--select", "CR902"]) == 0  # a deliberate selection is not a failure...
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "cleanroom gates: 2 files, 0 violation(s), 0 waiver(s); 1 of 13 rules ran"  # ...but not a pass of all
    assert err[1].startswith("  rules not run: CR101, CR102, ") and "CR501, CR502" in err[1]
    assert err[1].endswith("(not selected: select / --select); CR103 (off by default: --extend-select CR103 runs it)")
    assert main(["gates", "okd", "--select", "CR902", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["counts"]["CR902"] == 0
    assert data["counts"]["CR101"] is None and data["counts"]["CR501"] is None  # not a 0: it did not run
    assert data["rules_not_run"]["CR101"] == "not selected: select / --select" and "CR902" not in data["rules_not_run"]
    assert main(["gates", "okd", "--select", "CR902", "--format", "github"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "::notice title=cleanroom gates rule-not-run::CR101 did not run: not selected: select / --select" in out
    assert main(["gates", "okd", "--select", "CR902", "--format", "sarif"]) == 0
    log = json.loads(capsys.readouterr().out)
    jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text()))
    notes = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert {n["associatedRule"]["id"] for n in notes if n["descriptor"]["id"] == "rule-not-run"} == {
        "CR101", "CR102", "CR103", "CR201", "CR202", "CR301", "CR302", "CR401", "CR501", "CR502", "CR503", "CR901"
    }


def test_ignore_lists_the_disabled_rules_as_not_run(okd: Path, capsys) -> None:
    assert main(["gates", "okd", "--ignore", "CR101,CR501", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["CR101"] is None and data["rules_not_run"]["CR501"] == "disabled: disable / --ignore"
    assert main(["gates", "okd", "--ignore", "CR101,CR501"]) == 0
    assert "  rules not run: CR101, CR501 (disabled: disable / --ignore); CR103 (off by default" in capsys.readouterr().err


def test_per_path_ignores_on_every_file_are_rules_not_run_with_the_findings_counted(okd: Path, capsys) -> None:
    (okd / "pyproject.toml").write_text('[tool.cleanroom.gates]\nper_path_ignores = {"*" = ["CR101", "CR501"]}\n')
    assert main(["gates", "okd"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "cleanroom gates: 2 files, 0 violation(s), 0 waiver(s); 10 of 13 rules ran"
    assert err[1].startswith("  rules not run: CR101, CR501 (per_path_ignores cover every file checked); CR103")
    assert err[2] == '  per_path_ignores "*": CR101, CR501 not run on 2 files; 2 finding(s) not reported (CR101: 1, CR501: 1)'
    assert main(["gates", "okd", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["CR101"] is None and data["rules_not_run"]["CR501"] == "per_path_ignores cover every file checked"
    assert data["per_path_ignores_applied"] == [
        {"pattern": "*", "rules": ["CR101", "CR501"], "files": 2, "findings_not_reported": {"CR101": 1, "CR501": 1}}
    ]


def test_per_path_ignores_on_some_files_count_what_they_kept_out(okd: Path) -> None:
    """The rule ran on b.py, so it ran (a count, 0): the pattern's line says what it kept out of a.py, and a
    finding is put down to the first pattern that names its rule (a.py matches both)."""
    config = GateConfig(root=okd, per_path_ignores=(("okd/a.py", frozenset({"CR101"})), ("okd/a*", frozenset({"CR101", "CR501"}))))
    report = run_gates(config, [okd / "okd"], use_cache=False)
    data = report.to_dict()
    assert report.ok and data["counts"]["CR101"] == 0 and "CR101" not in data["rules_not_run"]
    assert data["per_path_ignores_applied"] == [
        {"pattern": "okd/a.py", "rules": ["CR101"], "files": 1, "findings_not_reported": {"CR101": 1}},
        {"pattern": "okd/a*", "rules": ["CR101", "CR501"], "files": 1, "findings_not_reported": {"CR101": 0, "CR501": 1}},
    ]


def test_the_tally_matches_each_path_against_each_pattern_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``PathIgnoreTally.add_file`` filters and counts from one match of the file against each pattern (it
    matched twice: once for the rules that ran, once for the counts), and counts as before."""
    from cleanroom.code_gates import config as config_module
    from cleanroom.code_gates.report import PathIgnoreTally

    calls: list[tuple[str, str]] = []
    real = config_module._matches
    monkeypatch.setattr(config_module, "_matches", lambda rel, pattern: calls.append((rel, pattern)) or real(rel, pattern))
    tally = PathIgnoreTally(GateConfig(root=tmp_path, per_path_ignores=(("a.py", frozenset({"CR101"})),
                                                                         ("a*", frozenset({"CR101", "CR501"})))))
    tally.add_file("a.py", ["CR101", "CR501"])
    assert sorted(calls) == [("a.py", "a*"), ("a.py", "a.py")]
    applied, everywhere = tally.result()
    assert [(p.pattern, p.files, p.findings) for p in applied] == [
        ("a.py", 1, (("CR101", 1),)), ("a*", 1, (("CR101", 0), ("CR501", 1)))]
    assert everywhere == {"CR101", "CR501"}


def test_a_disabled_rule_reports_no_finding(tmp_path: Path) -> None:
    """CR902 (a malformed waiver) off by select or disable reports nothing, as every other rule: a rule listed as
    not run must not report."""
    (tmp_path / "a.py").write_text("import os  # cleanroom: allow[CR501]\n")
    assert [v.rule for v in run_gates(GateConfig(root=tmp_path), [tmp_path]).violations] == ["CR902"]
    assert run_gates(GateConfig(root=tmp_path, disable=frozenset({"CR902"})), [tmp_path], use_cache=False).ok


def test_write_baseline_onto_a_fifo_or_a_device_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    """``--write-baseline`` names an output: a FIFO (reading it to see whether it is a baseline blocked forever)
    or a link to a device is refused with one line, exit 2, and left as it was."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "ok.py").write_text("import os\n")
    os.mkfifo(tmp_path / "base.json")
    (tmp_path / "nul.json").symlink_to("/dev/null")
    for name, kind in (("base.json", "a FIFO"), ("nul.json", "a character device")):
        r = subprocess.run([sys.executable, "-m", "cleanroom.cli", "gates", "--no-cache", "d", "--write-baseline",
                            name], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert r.returncode == 2 and f"--write-baseline {name}: is {kind}" in r.stderr, r.stderr
    assert (tmp_path / "base.json").is_fifo() and (tmp_path / "nul.json").resolve() == Path("/dev/null")


def test_each_cause_of_a_rule_not_running_is_decided_once_and_said_both_ways(tmp_path: Path) -> None:
    """The report and the pytest items read one table (``report.NOT_RUN``) through one decision
    (``not_run_cause``): disabled before unselected, unselected split by the rule's default, per_path_ignores
    last; the two wordings of each cause as the summary and the ``-rs`` skip line show them."""
    from cleanroom.code_gates.report import NOT_RUN, not_run_cause, not_run_reason, not_run_skip

    config = GateConfig(root=tmp_path, select=frozenset({"CR201", "CR501"}), disable=frozenset({"CR201", "CR103"}))
    ignored = frozenset({"CR501"})
    assert [not_run_cause(r, config, ignored) for r in ("CR201", "CR103", "CR101", "CR501")] == [
        "disabled", "disabled", "not selected", "ignored everywhere"]
    assert not_run_cause("CR501", config) is None and not_run_cause("CR103", GateConfig(root=tmp_path)) == "off by default"
    assert set(NOT_RUN) == {"disabled", "off by default", "not selected", "ignored everywhere"}
    assert not_run_reason("CR103", GateConfig(root=tmp_path)) == "off by default: --extend-select CR103 runs it"
    assert not_run_skip("CR103", "off by default", "pyproject.toml") == (
        "CR103 is off by default; add it to select in pyproject.toml: it did not run")
    assert not_run_skip("CR501", "ignored everywhere", "p.toml") == (
        "CR501 is turned off on every file gated by per_path_ignores in p.toml: it did not run")

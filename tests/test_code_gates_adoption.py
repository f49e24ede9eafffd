"""Adopting the gates in a real repository: baseline, per-path and command-line settings, CI formats, honest edges."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from cleanroom.cli import main
from cleanroom.code_gates import check_source, load_config, run_gates
from cleanroom.code_gates.config import with_overrides
from cleanroom.code_gates.discovery import config_for_paths
from cleanroom.errors import ConfigError, InputError, MissingFileError

ROOT = Path(__file__).resolve().parents[1]
SARIF_SCHEMA = Path(__file__).parent / "sarif-schema-2.1.0.json"

TRAIN = """\
from lab.load import load_model
from transformers import AutoTokenizer


def main(args):
    model = load_model(args.path, load_in_4bit=True, quantization_config=args.q)
    tok = AutoTokenizer.from_pretrained(args.path)
    tok.pad_token = tok.eos_token
    return model, tok
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small research repository with its own loader module, as the cwd."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLEANROOM_CACHE_DIR", str(tmp_path / ".user-cache"))
    (tmp_path / "pyproject.toml").write_text('[tool.cleanroom.gates]\nloader_modules = ["src/lab/load.py"]\n')
    lab = tmp_path / "src" / "lab"
    lab.mkdir(parents=True)
    (lab / "load.py").write_text(
        "from transformers import AutoModelForCausalLM\n\n\ndef load_model(path, **kw):\n"
        "    return AutoModelForCausalLM.from_pretrained(path, **kw)\n"
    )
    (lab / "train.py").write_text(TRAIN)
    return tmp_path


def test_quantization_keywords_to_the_own_loader_pass_and_messages_name_it(repo: Path, capsys) -> None:
    assert main(["gates", "--no-cache"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in out[:2]] == ["CR101", "CR302"]  # no CR401 for load_model(...)
    assert all(
        line.endswith("do this in your loader (src/lab/load.py) and call it from here") for line in out[:2]
    )
    # The same keywords to a function that is not from the loader module are CR401.
    other = TRAIN.replace("from lab.load import load_model", "from lab.util import load_model")
    rules = [
        v.rule for v in check_source(other, "t.py", loader_callee=load_config().is_loader_callee).violations
    ]
    assert rules.count("CR401") == 1  # one per line: load_in_4bit= and quantization_config= together


def test_baseline_round_trip_survives_line_shifts_and_reports_fixed_entries(repo: Path, capsys) -> None:
    assert main(["gates", "--write-baseline", "gates-baseline.json"]) == 0
    data = json.loads((repo / "gates-baseline.json").read_text())
    assert [(e["rule"], e["path"]) for e in data["findings"]] == [
        ("CR101", "src/lab/train.py"),
        ("CR302", "src/lab/train.py"),
    ]
    capsys.readouterr()
    assert main(["gates", "--baseline", "gates-baseline.json"]) == 0  # today's state is accepted
    train = repo / "src" / "lab" / "train.py"
    # Lines inserted above and re-indentation do not make an accepted finding new...
    train.write_text("import os\n\n\n" + TRAIN.replace("    tok.pad_token", "    tok.pad_token "))
    assert main(["gates", "--baseline", "gates-baseline.json"]) == 0
    # ...a new finding fails, and a copy of an accepted line is new too.
    train.write_text(TRAIN + "\n\ndef again(tok):\n    tok.pad_token = tok.eos_token\n")
    assert main(["gates", "--baseline", "gates-baseline.json"]) == 1
    assert capsys.readouterr().out.startswith("src/lab/train.py:13:5 CR302 ")
    # Fixing an accepted finding is reported as a stale entry (and passes).
    train.write_text(TRAIN.replace("    tok.pad_token = tok.eos_token\n", ""))
    assert main(["gates", "--baseline", "gates-baseline.json", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["baselined"] == 1
    assert [(e["rule"], e["path"]) for e in report["stale_baseline_entries"]] == [
        ("CR302", "src/lab/train.py")
    ]


@pytest.mark.parametrize("text", ["{not json", '{"version": 7, "findings": []}', '{"version": 1}'])
def test_bad_baseline_is_an_input_error(repo: Path, text: str, capsys) -> None:
    (repo / "b.json").write_text(text)
    assert main(["gates", "--baseline", "b.json"]) == 2
    assert "b.json: not a cleanroom gates baseline" in capsys.readouterr().err
    assert main(["gates", "--baseline", "missing.json"]) == 2


def test_sarif_validates_against_the_2_1_0_schema(repo: Path, capsys) -> None:
    import jsonschema  # the dev extra; imported here so the other adoption tests run without it

    assert main(["gates", "--format", "sarif"]) == 1
    log = json.loads(capsys.readouterr().out)
    jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text()))
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == [
        ("CR101", 7),
        ("CR302", 8),
    ]
    broken = dict(log, version="2.0")  # the schema does reject a wrong log
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(SARIF_SCHEMA.read_text()))


def test_github_format_is_one_escaped_annotation_per_finding(repo: Path, capsys) -> None:
    (repo / "src" / "lab" / "train.py").write_text("def f(tok):\n    tok.chat_template = None\n")
    assert main(["gates", "--format", "github"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        "::error file=src/lab/train.py,line=2,endLine=2,col=5,title=CR201 chat-template-write::"
    )
    assert "%3A" not in out[0].split("::", 2)[2]  # the message keeps its colons; only properties escape them


def test_command_line_settings_as_ruff_users_expect(repo: Path, capsys) -> None:
    assert main(["gates", "--ignore", "CR101,CR302"]) == 0
    assert main(["gates", "--select", "CR302"]) == 1
    assert capsys.readouterr().out.split()[1] == "CR302"
    assert main(["gates", "--exclude", "src"]) == 2  # nothing left to gate is an error
    assert "no Python files to gate" in capsys.readouterr().err
    assert main(["gates", "--loader-module", "src/lab/train.py"]) == 0
    assert main(["gates", "--loader-module", "src/lab/nope.py"]) == 2
    assert "loader module 'src/lab/nope.py' does not exist" in capsys.readouterr().err
    assert main(["gates", "--select", "CR999"]) == 2


def test_per_path_ignores_and_off_by_default_config_read(repo: Path) -> None:
    (repo / "src" / "lab" / "cfg.py").write_text(
        "from transformers import AutoConfig\nc = AutoConfig.from_pretrained('p')\n"
    )
    (repo / "pyproject.toml").write_text(
        '[tool.cleanroom.gates]\nloader_modules = ["src/lab/load.py"]\nselect = ["CR103", "CR302"]\n'
        '[tool.cleanroom.gates.per_path_ignores]\n"src/lab/train*.py" = ["CR302"]\n'
    )
    assert [(v.path, v.rule) for v in run_gates(load_config()).violations] == [("src/lab/cfg.py", "CR103")]
    (repo / "pyproject.toml").write_text('[tool.cleanroom.gates.per_path_ignores]\n"src/*" = ["CR777"]\n')
    with pytest.raises(ConfigError, match="CR777"):
        load_config()


def test_helpers_table_extends_the_built_in_list(repo: Path) -> None:
    (repo / "src" / "lab" / "fmt.py").write_text("from lab.chat import chatify\nx = chatify([])\n")
    base = [v.rule for v in run_gates(load_config()).violations]
    (repo / "pyproject.toml").write_text(
        '[tool.cleanroom.gates]\nloader_modules = ["src/lab/load.py"]\n'
        '[tool.cleanroom.gates.helpers]\n"lab.chat.chatify" = "CR202"\n'
    )
    extended = [v.rule for v in run_gates(load_config()).violations]
    assert sorted(extended) == sorted(base + ["CR202"])


def test_configured_loader_module_or_path_that_does_not_exist_is_an_error(repo: Path) -> None:
    (repo / "pyproject.toml").write_text('[tool.cleanroom.gates]\nloader_modules = ["src/lab/loader.py"]\n')
    with pytest.raises(MissingFileError, match="src/lab/loader.py"):
        load_config()
    (repo / "pyproject.toml").write_text('[tool.cleanroom.gates]\npaths = ["scripts"]\n')
    with pytest.raises(MissingFileError, match="scripts"):
        run_gates(load_config())
    (repo / "empty").mkdir()
    with pytest.raises(InputError, match="no Python files"):
        run_gates(load_config(), [repo / "empty"])


def test_symlinked_folders_are_followed_once_and_cycles_end(repo: Path) -> None:
    shared = repo / "shared"
    shared.mkdir()
    (shared / "bad.py").write_text("import pickle\npickle.load(open('x', 'rb'))\n")
    os.symlink(shared, repo / "src" / "linked")
    os.symlink(repo / "src", shared / "back")  # a cycle: shared/back -> src -> linked -> shared
    report = run_gates(with_overrides(load_config(), ignore=["CR101", "CR302"]))
    assert [v.rule for v in report.violations] == ["CR503"]  # seen once, through one of the two routes


def test_cr901_names_the_python_that_parsed_the_file() -> None:
    (v,) = check_source("match x:\n  case 1 pass\n", "m.py").violations
    assert v.rule == "CR901" and f"Python {sys.version_info.major}.{sys.version_info.minor}" in v.message


def test_cache_lives_in_the_user_cache_directory(repo: Path) -> None:
    run_gates(load_config())
    assert list((repo / ".user-cache").glob("gates-*.json")) and not (repo / ".cleanroom-cache").exists()


def test_pre_commit_hook_runs_the_command() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "cleanroom-gates" and hook["entry"] == "cleanroom gates"
    assert hook["language"] == "python" and hook["pass_filenames"] is False


def test_cr301_on_a_token_count_is_kept_and_the_message_says_why() -> None:
    """The decision for ``add_special_tokens=False`` used only to count: still CR301, with the reason."""
    (v,) = check_source(
        "def n(tok, s):\n    return len(tok(s, add_special_tokens=False))\n", "c.py"
    ).violations
    assert v.rule == "CR301" and "differs by the BOS/EOS from what training sees" in v.message


def test_another_checkout_is_gated_with_its_own_settings_not_the_cwd_projects(
    repo: Path, capsys, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """From inside ``repo`` (loader module src/lab/load.py), gating a second checkout reads the pyproject
    nearest above that checkout: the defaults when it has none (messages never name repo's loader module),
    its own table when it has one (its loader module exempt, its messages naming it)."""
    other = tmp_path_factory.mktemp("other-checkout")  # beside repo, not under its pyproject
    (other / "scripts").mkdir(parents=True)
    (other / "scripts" / "sft.py").write_text(TRAIN)
    assert main(["gates", "--no-cache", str(other)]) == 1
    out = capsys.readouterr().out
    assert "src/lab/load.py" not in out and "list this module in [tool.cleanroom.gates] loader_modules" in out
    (other / "pyproject.toml").write_text('[tool.cleanroom.gates]\nloader_modules = ["scripts/sft.py"]\n')
    assert main(["gates", "--no-cache", str(other / "scripts"), str(other / "scripts" / "sft.py")]) == 0
    assert main(["gates", "--no-cache", "--config", "pyproject.toml", str(other)]) == 1  # an explicit --config wins
    assert "do this in your loader (src/lab/load.py)" in capsys.readouterr().out
    assert main(["gates", "--no-cache"]) == 1  # no PATH: the cwd's settings, as before
    assert "do this in your loader (src/lab/load.py)" in capsys.readouterr().out


CONFIG_READ = 'from transformers import AutoConfig\ncfg = AutoConfig.from_pretrained("p")\n'  # CR103: off by default


@pytest.fixture
def monorepo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository (``.git``) whose root table turns CR103 on, with a package that has its own pyproject
    without a table, inside a folder whose pyproject has a table of its own (above the repository)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLEANROOM_CACHE_DIR", str(tmp_path / ".user-cache"))
    (tmp_path / "pyproject.toml").write_text('[tool.cleanroom.gates]\ndisable = ["CR103"]\n')
    root = tmp_path / "mono"
    (root / ".git").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "mono"\n[tool.cleanroom.gates]\nselect = ["CR101", "CR103"]\n')
    foo = root / "packages" / "foo"
    (foo / "src").mkdir(parents=True)
    (foo / "pyproject.toml").write_text('[project]\nname = "foo"\n')
    (foo / "src" / "cfg.py").write_text(CONFIG_READ)
    return root


def test_a_package_without_a_table_is_gated_with_the_repository_roots_table(monorepo: Path, capsys) -> None:
    """The package's own pyproject (no table) does not end the search: the root's select (CR103 on) applies,
    from the root and from inside the package, and the summary and the JSON say which file was read."""
    os.chdir(monorepo)
    assert main(["gates", "--no-cache", "packages/foo"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("packages/foo/src/cfg.py:2:7 CR103 ")
    assert out[-1] == "  config: pyproject.toml"
    os.chdir(monorepo / "packages" / "foo")
    assert main(["gates", "--no-cache", "--json", "src"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["CR103"] == 1
    assert report["config"]["source"] == str(monorepo / "pyproject.toml")


def test_the_search_stops_at_the_repository_root(monorepo: Path, capsys) -> None:
    """Without a table up to the folder holding ``.git``, the defaults apply (CR103 off), never the table of
    a pyproject above the repository; the summary says so."""
    (monorepo / "pyproject.toml").write_text('[project]\nname = "mono"\n')
    os.chdir(monorepo)
    assert main(["gates", "--no-cache", "packages/foo"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "  config: defaults, no [tool.cleanroom.gates] found above packages/foo"
    assert load_config(start=monorepo / "packages" / "foo").source == "defaults"


def test_paths_under_different_tables_are_an_input_error(monorepo: Path, tmp_path: Path, capsys) -> None:
    """One run, two tables: applying either would drop the other's settings, so the command refuses (exit 2),
    names both and the fix; --config chooses one."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "cfg.py").write_text(CONFIG_READ)
    os.chdir(monorepo)
    assert main(["gates", "--no-cache", "packages/foo", str(other)]) == 2
    err = capsys.readouterr().err
    assert "InputError: PATHs packages/foo and " in err and str(tmp_path / "pyproject.toml") in err
    assert str(monorepo / "pyproject.toml") in err and "pass --config PYPROJECT" in err
    assert main(["gates", "--no-cache", "--config", "pyproject.toml", "packages/foo", str(other)]) == 1
    capsys.readouterr()
    with pytest.raises(InputError):
        config_for_paths(["packages/foo", str(other)])

"""``pytest --cleanroom-gates`` (and ``--cleanroom-gates-paths=PATHS``) adds one test item per gate rule over the user's code."""

from __future__ import annotations

import pytest

from cleanroom.code_gates import RULES

N_RULES = sum(rule.default for rule in RULES)  # the rules that run unless selected
N_OFF = len(RULES) - N_RULES  # off-by-default rules (CR103): their items skip and say why

PYPROJECT = """
[tool.cleanroom.gates]
paths = ["scripts"]
loader_modules = ["scripts/load.py"]
"""
LOADER = (
    "from transformers import AutoTokenizer\n\ndef load(p):\n    return AutoTokenizer.from_pretrained(p)\n"
)
TRAIN = (
    "import torch\n\n"
    "def train(tok, path):\n"
    "    tok.chat_template = None\n"
    "    return torch.load(path)  # cleanroom: allow[CR502] our own optimizer state\n"
)


def _repo(pytester: pytest.Pytester, train: str = TRAIN) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.mkdir("scripts")
    (pytester.path / "scripts" / "load.py").write_text(LOADER)
    (pytester.path / "scripts" / "train.py").write_text(train)
    pytester.makepyfile(test_unit="def test_unit(): pass")


def test_violation_fails_its_rule_item_only(pytester: pytest.Pytester) -> None:
    _repo(pytester)
    result = pytester.runpytest("--cleanroom-gates", "-v")
    result.assert_outcomes(passed=N_RULES, failed=1, skipped=N_OFF)  # test_unit + every rule but CR201
    result.stdout.fnmatch_lines(
        [
            "*cleanroom-gates::CR101 PASSED*",
            "*cleanroom-gates::CR201 FAILED*",
            "*CR201 chat-template-write:*",
            "scripts/train.py:4:5 CR201 chat_template assigned outside the loader;*",
            "*cleanroom gates*",
            "*waived scripts/train.py:5 CR502: our own optimizer state*",
        ]
    )
    assert result.ret == 1


def test_clean_repository_passes_every_rule(pytester: pytest.Pytester) -> None:
    _repo(pytester, train="def train(tok):\n    return tok.chat_template is None\n")
    result = pytester.runpytest("--cleanroom-gates")
    result.assert_outcomes(passed=N_RULES + 1, skipped=N_OFF)
    assert result.ret == 0


def test_without_the_option_no_gate_items(pytester: pytest.Pytester) -> None:
    _repo(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_explicit_paths_and_keyword_selection(pytester: pytest.Pytester) -> None:
    _repo(pytester)
    pytester.mkdir("other")
    (pytester.path / "other" / "x.py").write_text("import pickle\npickle.loads(b'')\n")
    result = pytester.runpytest("--cleanroom-gates-paths=other", "-k", "CR503 or CR201", "-v")
    # only other/ is gated: CR201 (in scripts/) passes, CR503 (in other/) fails
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["other/x.py:2:1 CR503 pickle.loads() unpickles;*"])


def test_a_test_path_after_the_flag_stays_a_test_path(pytester: pytest.Pytester) -> None:
    """``pytest --cleanroom-gates test_unit.py``: test_unit.py is what pytest runs, not what is gated."""
    _repo(pytester)
    pytester.makepyfile(test_other="def test_other(): pass")
    result = pytester.runpytest("--cleanroom-gates", "test_unit.py", "-v")
    result.assert_outcomes(passed=N_RULES, failed=1, skipped=N_OFF)  # test_unit + every rule but CR201 (in scripts/)
    result.stdout.fnmatch_lines(["*test_unit.py::test_unit PASSED*"])
    result.stdout.no_fnmatch_line("*test_other*")


def test_gate_paths_need_their_own_option(pytester: pytest.Pytester) -> None:
    _repo(pytester)
    assert pytester.runpytest("--cleanroom-gates=other").ret == pytest.ExitCode.USAGE_ERROR
    empty = pytester.runpytest("--cleanroom-gates-paths=,")
    assert empty.ret == pytest.ExitCode.USAGE_ERROR
    empty.stderr.fnmatch_lines(["*--cleanroom-gates-paths=',' names no path*"])


def test_disabled_rule_skips_and_bad_config_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _repo(pytester)
    pytester.makefile(".toml", pyproject=PYPROJECT + 'disable = ["CR201"]\n')
    result = pytester.runpytest("--cleanroom-gates", "-rs")
    result.assert_outcomes(passed=N_RULES, skipped=1 + N_OFF)
    result.stdout.fnmatch_lines(["*CR201 is disabled in*pyproject.toml*"])
    pytester.makefile(".toml", pyproject=PYPROJECT + "colour = 1\n")
    bad = pytester.runpytest("--cleanroom-gates")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--cleanroom-gates:*unknown key(s) colour*"])


def test_a_rule_left_out_of_select_skips_and_says_why(pytester: pytest.Pytester) -> None:
    """``select`` without CR201: the CR201 item is skipped as not run, never a pass (scripts/train.py breaks it)."""
    _repo(pytester)
    selected = sorted(rule.id for rule in RULES if rule.default and rule.id != "CR201")
    pytester.makefile(".toml", pyproject=PYPROJECT + f"select = {selected!r}\n".replace("'", '"'))
    result = pytester.runpytest("--cleanroom-gates", "-rs")
    result.assert_outcomes(passed=N_RULES, skipped=1 + N_OFF)
    result.stdout.fnmatch_lines(["*rules not run: CR103*CR201*", "*CR201 is not in select in*pyproject.toml: it did not run*"])


def test_a_rule_ignored_on_every_file_skips_and_the_summary_counts_its_findings(pytester: pytest.Pytester) -> None:
    """``per_path_ignores`` covering every gated file: the rule ran nowhere, so its item skips; the terminal
    summary says how many findings the pattern kept out."""
    _repo(pytester)
    pytester.makefile(".toml", pyproject=PYPROJECT + '[tool.cleanroom.gates.per_path_ignores]\n"scripts/*" = ["CR201"]\n')
    result = pytester.runpytest("--cleanroom-gates", "-rs")
    result.assert_outcomes(passed=N_RULES, skipped=1 + N_OFF)
    result.stdout.fnmatch_lines([
        '*per_path_ignores "scripts/*": CR201 not run on 2 files; 1 finding(s) not reported (CR201: 1)*',
        "*CR201 is turned off on every file gated by per_path_ignores in*pyproject.toml: it did not run*",
    ])

"""The AST code gates find every violation in the corpus with no false alarm, where grep gets it wrong."""

from __future__ import annotations

import ast
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cleanroom.cli import main
from cleanroom.code_gates import RULES, RULES_BY_ID, GateConfig, check_source, load_config, run_gates
from cleanroom.code_gates.checker import check_tree
from cleanroom.code_gates.prefilter import needs_ast
from cleanroom.errors import ConfigError, GateError, InputError, MissingFileError

CORPUS = Path(__file__).parent / "gates_corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.py"))
_EXPECT = re.compile(r"# expect: ((?:CR\d{3} ?)+)")


def expected(path: Path) -> set[tuple[int, str]]:
    """(line, rule) pairs marked ``# expect: RULE`` in a corpus file."""
    lines = path.read_text().splitlines()
    return {(n, rule) for n, line in enumerate(lines, 1) for m in _EXPECT.findall(line) for rule in m.split()}


def found(path: Path, **kwargs) -> list[tuple[int, str]]:
    return [(v.line, v.rule) for v in check_source(path.read_bytes(), path.name, **kwargs).violations]


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.stem for p in CORPUS_FILES])
def test_corpus_file_exactly_as_marked(path: Path) -> None:
    assert sorted(found(path)) == sorted(expected(path))  # a list: a duplicate report is a failure too


def test_corpus_covers_every_code_rule_positive_and_negative() -> None:
    marked = {rule for p in CORPUS_FILES for _, rule in expected(p)}
    # CR902 (bad waivers) and the off-by-default CR103 are tested inline below
    assert marked == set(RULES_BY_ID) - {"CR902", "CR103"}
    negatives = [p for p in CORPUS_FILES if p.stem.startswith("negative_")]
    assert {p.stem for p in negatives} >= {
        f"negative_{family}" for family in ("cr101", "cr201", "cr202", "cr3xx", "cr401", "cr5xx")
    }
    assert all(not expected(p) for p in negatives)
    # Negatives really do contain the forbidden text (in comments, strings, docstrings).
    text = "".join(p.read_text() for p in negatives)
    for needle in (
        "chat_template = None",
        "add_special_tokens=False",
        "from_pretrained(",
        "BitsAndBytesConfig(load_in_4bit=True)",
        "torch.load(path)",
    ):
        assert needle in text


def test_positions_and_line_format() -> None:
    v = check_source("import torch\n\nx = [1,\n     torch.load('w.pt')]\n", "pkg/m.py").violations
    assert [(x.line, x.col, x.rule) for x in v] == [(4, 6, "CR502")]
    assert (
        v[0]
        .format()
        .startswith("pkg/m.py:4:6 CR502 torch.load() without weights_only=True; pass weights_only=True")
    )


def _grep(pattern: str) -> set[tuple[str, int]]:
    out = subprocess.run(["grep", "-rn", pattern, str(CORPUS)], capture_output=True, text=True).stdout
    hits = set()
    for line in out.splitlines():
        file, number, _ = line.split(":", 2)
        hits.add((Path(file).name, int(number)))
    return hits


@pytest.mark.skipif(shutil.which("grep") is None, reason="grep is not installed")
@pytest.mark.parametrize(
    ("pattern", "rule"), [("chat_template = None", "CR201"), ("add_special_tokens=False", "CR301")]
)
def test_seed_grep_is_wrong_where_the_gate_is_right(pattern: str, rule: str) -> None:
    """The seed's gate was ``grep -rn PATTERN``: it alarms on comments/strings and misses real writes."""
    truth = {(p.name, line) for p in CORPUS_FILES for line, r in expected(p) if r == rule}
    gate = {(p.name, line) for p in CORPUS_FILES for line, r in found(p) if r == rule}
    grep = _grep(pattern)
    false_alarms = {hit for hit in grep if hit[0].startswith("negative_")}
    misses = truth - grep
    assert gate == truth
    assert len(false_alarms) >= 2, grep
    assert len(misses) >= 3, misses


def test_loader_module_is_exempt_from_migration_rules_only() -> None:
    src = "import torch\nfrom transformers import AutoTokenizer\nt = AutoTokenizer.from_pretrained('p', trust_remote_code=True)\nt.chat_template = None\ntorch.load('x')\n"
    outside = {v.rule for v in check_source(src, "a.py").violations}
    inside = {v.rule for v in check_source(src, "a.py", loader=True).violations}
    assert outside == {"CR101", "CR501", "CR201", "CR502"}
    assert inside == {"CR501", "CR502"}


def test_waiver_with_reason_suppresses_and_is_reported() -> None:
    src = (
        "import torch\n"
        "a = torch.load('x')  # cleanroom: allow[CR502] our own checkpoint, written by this run\n"
        "# cleanroom: allow[CR501,CR502] reviewed the code at rev abc\n"
        "b = torch.load('x', trust_remote_code=True)\n"
        "c = torch.load('x')\n"
        's = "# cleanroom: allow[CR502] in a string is not a waiver"; d = torch.load(s)\n'
    )
    result = check_source(src, "w.py")
    assert [(v.line, v.rule) for v in result.violations] == [(5, "CR502"), (6, "CR502")]
    assert [(w.covers_line, w.rules, w.reason) for w in result.used_waivers] == [
        (2, ("CR502",), "our own checkpoint, written by this run"),
        (4, ("CR501", "CR502"), "reviewed the code at rev abc"),
    ]


def _padded(middle: str) -> str:
    """*middle* between 20 lines of plain code, so no waiver text is on the file's last line."""
    before = "".join(f"a{i} = {i}\n" for i in range(10))
    after = "".join(f"b{i} = {i}\n" for i in range(10))
    return "import torch\n" + before + middle + after


def test_waivers_apply_anywhere_in_a_longer_file() -> None:
    """A waiver in the middle of a file is read (a whole-text ``$`` without re.M only saw the last line)."""
    src = _padded(
        "x = torch.load('a')  # cleanroom: allow[CR502] our own checkpoint\n"
        "y = torch.load('b')  # cleanroom: allow[CR502]\n"
    )
    result = check_source(src, "w.py")
    assert [(v.line, v.rule) for v in result.violations] == [(13, "CR502"), (13, "CR902")]
    assert "has no reason" in result.violations[1].message
    assert [(w.line, w.reason) for w in result.used_waivers] == [(12, "our own checkpoint")]


def test_waiver_on_any_line_of_a_multiline_call_covers_it() -> None:
    src = _padded(
        "x = torch.load(\n"
        "    'a',\n"
        "    map_location='cpu',\n"
        ")  # cleanroom: allow[CR502] our own checkpoint\n"
        "y = torch.load(\n"
        "    'b',  # cleanroom: allow[CR502] our own optimizer state\n"
        ")\n"
        "z = torch.load(\n"
        "    'c',\n"
        ")\n"
        "# cleanroom: allow[CR502] the next line is outside z's call\n"
        "w = 1\n"
    )
    result = check_source(src, "w.py")
    assert [(v.line, v.rule, v.last_line) for v in result.violations] == [(19, "CR502", 21)]
    assert [w.covers_line for w in result.used_waivers] == [15, 17]
    assert [w.covers_line for w in result.unused_waivers] == [23]


@pytest.mark.parametrize(
    ("comment", "problem"),
    [
        ("allow[CR502]", "has no reason"),
        ("allow[CR999] because", "unknown rule(s) CR999"),
        ("allow[] x", "names no rule"),
    ],
)
def test_bad_waiver_is_a_violation_and_waives_nothing(comment: str, problem: str) -> None:
    result = check_source(f"import torch\nx = torch.load('p')  # cleanroom: {comment}\n", "w.py")
    assert [v.rule for v in result.violations] == ["CR502", "CR902"]
    assert problem in result.violations[1].message and not result.used_waivers


def test_compiler_warnings_about_the_code_are_not_emitted(recwarn: pytest.WarningsRecorder) -> None:
    """``x is 1`` makes compile() warn (printed to stderr in a plain run); the gates stay silent."""
    result = check_source("x = 1\ny = x is 1\nimport torch\nz = torch.load('p') if x is 2 else 0\n", "w.py")
    assert [v.rule for v in result.violations] == ["CR502"]  # the AST path compiles and parses it
    assert not [w for w in recwarn if issubclass(w.category, SyntaxWarning)]


def test_wrong_rule_waiver_is_unused_not_suppressing() -> None:
    result = check_source("import torch\nx = torch.load('p')  # cleanroom: allow[CR501] wrong rule\n", "w.py")
    assert [v.rule for v in result.violations] == ["CR502"]
    assert len(result.unused_waivers) == 1


def _repo(tmp_path: Path, table: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname = 'x'\n\n[tool.cleanroom.gates]\n{table}\n")
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "load.py").write_text(
        "from transformers import AutoTokenizer\nT = AutoTokenizer.from_pretrained('p')\n"
    )
    (tmp_path / "src" / "train.py").write_text("def f(tok):\n    tok.chat_template = None\n")
    (tmp_path / "vendor").mkdir(exist_ok=True)
    (tmp_path / "vendor" / "bad.py").write_text("import pickle\npickle.load(open('m.pkl', 'rb'))\n")
    return tmp_path / "pyproject.toml"


def test_config_paths_exclude_loader_and_disable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pyproject = _repo(tmp_path, 'paths = ["."]\nexclude = ["vendor"]\nloader_modules = ["src/load.py"]')
    report = run_gates(load_config(pyproject))
    assert report.files_checked == 2 and report.lines()[0].startswith("src/train.py:2:5 CR201 ")
    assert len(report.violations) == 1
    with pytest.raises(GateError, match="1 code gate violation"):
        report.raise_if_failed()
    disabled = load_config(_repo(tmp_path, 'loader_modules = ["load"]\ndisable = ["CR201", "CR503"]'))
    assert run_gates(disabled).ok  # dotted loader name, vendor scanned but CR503 off
    assert load_config(start=tmp_path / "src").root == tmp_path.resolve()


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ('exlude = ["x"]', "unknown key"),
        ('paths = "src"', "list of non-empty strings"),
        ('disable = ["CR999"]', "unknown rule"),
        ("loader_modules = [1]", "list of non-empty strings"),
    ],
)
def test_bad_config_is_a_config_error(tmp_path: Path, table: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(_repo(tmp_path, table))


@pytest.mark.parametrize(
    ("key", "example"),
    [
        ("paths", 'paths = ["src", "scripts"]'),
        ("exclude", 'exclude = ["tests/fixtures"]'),
        ("loader_modules", 'loader_modules = ["src/mylab/load.py"]'),
        ("disable", 'disable = ["CR502"]'),
    ],
)
def test_list_type_error_shows_an_example_for_its_own_key(tmp_path: Path, key: str, example: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"write e.g. {example}")):
        load_config(_repo(tmp_path, f'{key} = "x"'))


def test_empty_paths_is_rejected_not_widened_to_everything(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"paths = \[\] gates nothing"):
        load_config(_repo(tmp_path, "paths = []"))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('tool = "x"\n', "tool must be a table, got str"),
        ('[tool]\ncleanroom = "x"\n', "tool.cleanroom must be a table, got str"),
        ("[tool.cleanroom]\ngates = 1\n", "tool.cleanroom.gates must be a table, got int"),
    ],
)
def test_non_table_level_is_a_config_error_naming_the_key(tmp_path: Path, text: str, where: str) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{pyproject}: {where}")):
        load_config(pyproject)


def test_broken_symlink_in_a_scanned_folder_is_a_cr901_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "gone.py").symlink_to(tmp_path / "deleted.py")
    report = run_gates(GateConfig(root=tmp_path), use_cache=False)
    assert report.files_checked == 1  # ok.py: the link is listed as not checked, not counted as checked
    why = f"is a broken symbolic link (to {tmp_path / 'deleted.py'})"
    assert report.not_checked == (("gone.py", why),)
    assert report.lines() == [
        f"gone.py:1:1 CR901 {why}; every file the gates cover must be a readable regular file: fix or remove it, "
        "or add it to [tool.cleanroom.gates] exclude"
    ]
    quiet = run_gates(GateConfig(root=tmp_path, disable=frozenset({"CR901"})))
    assert quiet.ok and quiet.not_checked == report.not_checked  # CR901 off: no finding, still listed
    assert main(["gates", "."]) == 1 and "gone.py:1:1 CR901" in capsys.readouterr().out


def test_unlistable_folder_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the walk cannot list would otherwise pass unseen (os.walk skips it silently)."""
    import os

    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(InputError, match=r"locked: cannot list the folder to gate it \(Permission denied\)"):
        run_gates(GateConfig(root=tmp_path), use_cache=False)


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="no such file or folder"):
        run_gates(GateConfig(root=tmp_path), [tmp_path / "nope"])


def test_cli_exit_codes_lines_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    _repo(tmp_path, 'exclude = ["vendor"]\nloader_modules = ["src/load.py"]')
    assert main(["gates"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("src/train.py:2:5 CR201 chat_template assigned outside the loader; ")
    assert out[1] == "cleanroom gates: 2 files, 1 violation(s) (CR201: 1), 0 waiver(s); 12 of 13 rules ran"
    assert main(["gates", "src/load.py", "--json"]) == 0  # its from_pretrained is allowed: it is the loader
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["files_checked"] == 1 and data["counts"]["CR101"] == 0
    assert data["counts"]["CR103"] is None and data["rules_not_run"] == {"CR103": "off by default: --extend-select CR103 runs it"}
    (tmp_path / "src" / "train.py").write_text("def f(tok):\n    return tok.chat_template is None\n")
    assert main(["gates"]) == 0
    assert main(["gates", "--config", str(tmp_path / "missing.toml")]) == 2
    (tmp_path / "pyproject.toml").write_text("[tool.cleanroom.gates]\nbogus = 1\n")
    assert main(["gates"]) == 2
    assert "ConfigError" in capsys.readouterr().err
    assert main(["gates", "--list-rules"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(RULES)


def test_cli_json_on_the_corpus_counts_every_rule(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(CORPUS)
    assert main(["gates", ".", "--json", "--config", str(CORPUS / "missing.toml")]) == 2
    capsys.readouterr()
    monkeypatch.chdir(CORPUS.parent)  # no pyproject in tests/: the nearest is cleanroom's own
    assert main(["gates", str(CORPUS), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    truth = sum(len(expected(p)) for p in CORPUS_FILES)
    assert len(data["violations"]) == truth and data["files_checked"] == len(CORPUS_FILES)
    assert all(n > 0 for rule, n in data["counts"].items() if rule not in ("CR902", "CR103"))


def test_command_module_imports_nothing_heavy() -> None:
    code = "import sys, cleanroom.cli.gates_cmd, cleanroom.code_gates; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _code(src: str):
    return compile(src, "m.py", "exec", dont_inherit=True, optimize=0)


def test_prefilter_skips_text_only_mentions_and_keeps_code_mentions() -> None:
    """needs_ast() decides from code objects: comments/docstrings/strings alone never trigger the walk."""
    text_only = '"""tok.chat_template = None; torch.load(p)"""\n# tok(x, add_special_tokens=False)\nS = "eos_token is set"\n'
    assert not needs_ast(_code(text_only))
    for code in (
        "def f(t):\n    t.chat_template = None\n",  # attribute name, nested function
        "class C:\n    g = staticmethod(lambda t: t(x, add_special_tokens=False))\n",  # kwnames tuple in a lambda
        "setattr(t, 'eos_token', 1)\n",  # string constant equal to a trigger name
        "f(**{'trust_remote_code': True})\n",  # const-key dict
        "if False:\n    t.apply_chat_template(m)\n",  # unreachable code keeps its names (CPython behaviour pinned here)
        "def f():\n    return 1\n    torch.load(p)\n",
    ):
        assert needs_ast(_code(code)), code


# (source, needs the AST, rules the full check finds) for modules whose only trigger is load/loads/Unpickler
WEAK_ONLY = {
    "json-beside-torch": (
        "import json\nimport torch\ndef f(p):\n    return json.load(open(p)), torch.zeros(1)\n",
        True,
        [],
    ),
    "json-and-method": (
        "import json\ndef f(p, loader):\n    return json.load(open(p)), loader.load(), json.loads('1')\n",
        False,
        [],
    ),
    "numpy-without-allow_pickle": ("import numpy as np\nx = np.load('a.npy')\n", False, []),
    "from-torch.serialization": ("from torch.serialization import load\nx = load('w.pt')\n", True, ["CR502"]),
    "torch.serialization-as": ("import torch.serialization as ts\nx = ts.load('w.pt')\n", True, ["CR502"]),
    "import_module": (
        "import importlib\nx = importlib.import_module('torch.serialization').load('w.pt')\n",
        True,
        ["CR502"],
    ),
    "__import__": ("p = __import__('pickle')\ndef f(b):\n    return p.loads(b)\n", True, ["CR503"]),
    "joblib-alias": ("import joblib as jl\nm = jl.load('m.joblib')\n", True, ["CR503"]),
    "dill-Unpickler": ("from dill import Unpickler\nu = Unpickler(open('f', 'rb'))\n", True, ["CR503"]),
}


@pytest.mark.parametrize(("src", "needed", "rules"), WEAK_ONLY.values(), ids=WEAK_ONLY.keys())
def test_prefilter_counts_load_only_next_to_a_module_it_can_belong_to(
    src: str, needed: bool, rules: list[str]
) -> None:
    """``load`` alone (json.load, obj.load()) needs no AST; beside torch/pickle/joblib/dill it does.

    The full check agrees: a module the prefilter skips has no finding.
    """
    assert needs_ast(_code(src)) is needed
    assert [v.rule for v in check_tree(ast.parse(src), "m.py")] == rules


# With the source text: a weak word beside torch/pickle skips the AST only when the text shows every
# use as ``json.load``-like on a plain data reader that nothing rebinds. (source, needs the AST)
TEXT_AWARE = {
    "json-beside-torch": (
        "import json\nimport torch\ndef f(p):\n    return json.load(open(p)), torch.zeros(1)\n",
        False,
    ),
    "yaml-and-json-beside-torch": (
        "import json\nimport yaml  # config\nimport torch\ncfg = yaml.load(open('c'), yaml.SafeLoader)\n"
        "s = json.loads(cfg.json)\nx = torch.ones(2)\n",
        False,
    ),
    "json-beside-torch-crlf": ("import json\r\nimport torch\r\nx = json.load(open('a'))\r\n", False),
    "json-rebound-crlf": ("import json\r\nimport torch\r\njson = torch\r\nx = json.load('w.pt')\r\n", True),
    "torch.load": ("import json\nimport torch\nx = torch.load('w.pt')\n", True),
    "json-rebound": ("import json\nimport torch\njson = torch\nx = json.load('w.pt')\n", True),
    "import-torch-as-json": ("import torch as json\nx = json.load('w.pt')\n", True),
    "json-parameter": ("import torch\ndef f(json):\n    return json.load('w.pt')\nf(torch)\n", True),
    "json-keyword": ("import torch\ndef f(json=torch):\n    return json.load('w.pt')\n", True),
    "with-as-json": ("import torch\nwith ctx(torch) as json:\n    json.load('w.pt')\n", True),
    "from-import": (
        "from torch import load\nimport json\nx = json.load(open('a'))\ny = load('w.pt')\n",
        True,
    ),
    "getattr-string": ("import json, torch\nx = getattr(torch, 'load')('w.pt')\n", True),
    "spaced-attribute": ("import json\nimport torch\nx = torch . load('w.pt')\n", True),
    "line-continued": ("import json\nimport torch\nx = (torch.\n     load('w.pt'))\n", True),
    "nested-receiver": ("import json\nimport torch\nx = torch.serialization.load('w.pt')\n", True),
    "fullwidth-identifier": ("import json\nimport torch\nx = torch.\uff4c\uff4f\uff41\uff44('w.pt')\n", True),
    "monkeypatched-reader": (
        "import json\nimport torch\njson.load = torch.load\nx = json.load('w.pt')\n",
        True,
    ),
    "pickle-loads": ("import json\nimport pickle\nx = pickle.loads(b)\n", True),
    "loader-call-beside-torch": (
        "import torch\nfrom cleanroom import CleanModelLoader\n"
        "m, t, p = CleanModelLoader(os.environ['MODEL'], quantization=('nf4')).load()  # clean\n",
        False,
    ),
    "parenthesised-module": ("import torch\nx = (torch).load('w.pt')\n", True),
    "conditional-module": ("import torch, pickle\nx = (torch if a else pickle).load(f)\n", True),
    "call-on-weak-module": ("import pickle\nx = pickle.Unpickler(f).load()\n", True),
    "call-on-torch-function": ("import torch\nx = torch.serialization.Foo(f).load()\n", True),
    "import_module-call": ("import importlib\nx = importlib.import_module('torch').load('w.pt')\n", True),
    "__import__-call": ("x = __import__('pickle').loads(b)\n", True),
    "getattr-call": ("import torch\nx = getattr(torch, 'serialization').load('w.pt')\n", True),
    "aliased-import_module": (
        "from importlib import import_module as im\nx = im('torch').load('w.pt')\n",
        True,
    ),
    "star-import": ("from torch import *\nimport torch\nx = F(1).load()\ny = load('w.pt')\n", True),
    "multi-line-call": ("import torch\nx = Loader(\n    torch,\n).load()\n", True),
    "paren-in-string": ("import torch\nx = f(')(').load()\ny = (torch).load('w.pt')\n", True),
    "return-paren": ("import torch\ndef g():\n    return(torch).load('w.pt')\n", True),
    "if-paren": ("import torch\nif(torch).load('w.pt'):\n    pass\n", True),
    "not-paren": ("import torch\ny = not(torch).load('w.pt')\n", True),
    "await-paren": ("import torch\nasync def g():\n    await(torch).load('w.pt')\n", True),
    "reload-call": ("import importlib, torch\nx = importlib.reload(torch).load('w.pt')\n", True),
    "eval-call": ("import torch\nx = eval('torch').load('w.pt')\n", True),
    "subscript-receiver": ("import torch\nmods = [torch]\nx = mods[0].load('w.pt')\n", True),
}


@pytest.mark.parametrize(("src", "needed"), TEXT_AWARE.values(), ids=TEXT_AWARE.keys())
def test_prefilter_with_source_skips_only_plain_json_like_reads(src: str, needed: bool) -> None:
    """The text-aware prefilter never skips a module whose full check finds something."""
    assert needs_ast(_code(src), src) is needed
    assert needs_ast(_code(src), src.encode()) is needed
    if not needed:
        assert check_tree(ast.parse(src), "m.py") == []


# Lines that put a weak word (load/loads/Unpickler) beside a weights module in every way we know of:
# random modules built from them must never be skipped by the text-aware prefilter while the full
# check finds something.
_WEAK_LINES = (
    "import json",
    "import torch",
    "import pickle",
    "import yaml",
    "import importlib",
    "import torch as json",
    "from torch import load",
    "from torch import *",
    "from importlib import import_module as im",
    "from cleanroom import CleanModelLoader",
    "json = torch",
    "ld = torch.load",
    "t = getattr(torch, 'serialization')",
    "def f(json):\n    return json.load('w.pt')",
    "x = json.load(open('a'))",
    "x = json.loads(s)",
    "x = yaml.load(s)",
    "x = torch.load('w.pt')",
    "x = torch.load('w.pt', weights_only=True)",
    "x = CleanModelLoader('p').load()",
    "x = (torch).load('w.pt')",
    "def g():\n    return(torch).load('w.pt')",
    "y = not(torch).load('w.pt')",
    "assert(torch).load('w.pt')",
    "x = ld('w.pt')",
    "x = t.load('w.pt')",
    "x = pickle.loads(b)",
    "x = pickle.Unpickler(f).load()",
    "x = load('w.pt')",
    "x = im('torch').load('w.pt')",
    "x = importlib.import_module('torch').load('w.pt')",
    "x = model.eval()",
    "# torch.load(p) in a comment",
)


def test_text_aware_prefilter_never_skips_a_module_with_findings() -> None:
    rng = random.Random(20261128)
    skipped = flagged = 0
    for _ in range(3000):
        src = "\n".join(rng.sample(_WEAK_LINES, rng.randint(1, 7))) + "\n"
        code = _code(src)
        findings = check_tree(ast.parse(src), "m.py")
        flagged += bool(findings)
        if not needs_ast(code, src):
            skipped += 1
            assert findings == [], src
    assert skipped >= 300 and flagged >= 300  # both paths are exercised (about 700 and 470)


COMPILING = [p for p in CORPUS_FILES if "cr901" not in p.stem]


@pytest.mark.parametrize("path", COMPILING, ids=[p.stem for p in COMPILING])
def test_prefilter_never_hides_a_violation(path: Path) -> None:
    """Without the prefilter (a full AST walk) the corpus gives the same findings."""
    tree = ast.parse(path.read_bytes())
    full = sorted((v.line, v.rule) for v in check_tree(tree, path.name) if v.rule != "CR103")
    assert sorted(found(path)) == full
    assert bool(full) == path.stem.startswith("positive_")


def test_cache_warm_run_equals_cold_and_follows_edits_and_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warm results equal cold ones; an edited file is rechecked; config changes apply to cached findings."""
    from cleanroom.code_gates.cache import ResultCache

    monkeypatch.chdir(tmp_path)
    cache_dir = tmp_path / "user-cache"
    monkeypatch.setenv("CLEANROOM_CACHE_DIR", str(cache_dir))
    pyproject = _repo(tmp_path, 'exclude = ["vendor"]\nloader_modules = ["src/load.py"]')
    (tmp_path / "src" / "broken.py").write_text(
        "def f():\n    pass\nreturn 1\n"
    )  # a compiler error, not a parse error
    config = load_config(pyproject)
    cold = run_gates(config, use_cache=False)
    assert not cache_dir.exists()
    first, warm = run_gates(config), run_gates(config)
    assert cold.lines() == first.lines() == warm.lines()
    assert [v.rule for v in warm.violations] == ["CR901", "CR201"]
    assert (cache_dir / ".gitignore").read_text().splitlines()[-1] == "*"
    assert not (tmp_path / ".cleanroom-cache").exists()  # nothing written into the user's repository
    cache = ResultCache()
    assert cache.get(cache.key((tmp_path / "src" / "train.py").read_bytes())) is not None
    (tmp_path / "src" / "train.py").write_text("def f(tok):\n    setattr(tok, 'chat_template', None)\n")
    edited = run_gates(config)
    assert edited.lines()[1].startswith(
        "src/train.py:2:5 CR201 setattr(..., 'chat_template') outside the loader"
    )
    (tmp_path / "src" / "broken.py").unlink()
    relaxed = load_config(
        _repo(tmp_path, 'exclude = ["vendor"]\nloader_modules = ["src/load.py", "src/train.py"]')
    )
    assert run_gates(relaxed).ok and not run_gates(config).ok  # loader exemption applied after the cache
    assert [v.rule for v in run_gates(load_config(_repo(tmp_path, "")), use_cache=True).violations] == [
        "CR101",
        "CR201",
        "CR503",
    ]
    assert main(["gates", "--no-cache"]) == 1


def test_cache_damaged_store_is_ignored_and_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cleanroom.code_gates.cache import ResultCache

    monkeypatch.setenv("CLEANROOM_CACHE_DIR", str(tmp_path / "user-cache"))
    pyproject = _repo(tmp_path, 'exclude = ["vendor"]')
    config = load_config(pyproject)
    truth = run_gates(config, use_cache=False).lines()
    store = ResultCache().file
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text("{not json")
    (store.parent / "gates-0000000000000000.json").write_text("{}")  # an older gates version's store
    assert run_gates(config).lines() == truth
    json.loads(store.read_text())  # rewritten as valid JSON
    assert sorted(store.parent.glob("gates-*.json")) == [store]  # the stale store is removed
    key = ResultCache.key((tmp_path / "src" / "load.py").read_bytes())
    store.write_text(json.dumps({key: [["x", 1, "CR101", "m"]]}))  # a damaged entry is recomputed
    assert run_gates(config).lines() == truth

"""A repository's own wrapper that forwards ``**kwargs`` into a load carries the caller's trust_remote_code (CR501),
in the same module and across modules; wrappers that do not forward it, and a literal False, stay silent."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cleanroom.code_gates import GateConfig, check_source, run_gates
from cleanroom.code_gates.forwarding import absolute, module_name

# verl's shape: verl/utils/tokenizer.py, re-exported by verl/utils/__init__.py
WRAPPER = """\
from transformers import AutoTokenizer


def hf_tokenizer(name_or_path, correct_pad_token=True, **kwargs):
    kwargs["eos_token"] = kwargs.get("eos_token")
    tok = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    return tok


def not_forwarding(path, **kwargs):
    return AutoTokenizer.from_pretrained(path)


def own_switch(path, trust_remote_code=False, **kwargs):
    return AutoTokenizer.from_pretrained(path, **kwargs)


def pops_it(path, **options):
    options.pop("trust_remote_code", None)
    return AutoTokenizer.from_pretrained(path, **options)


def not_a_load(path, **kwargs):
    return dict(path=path, **kwargs)
"""


def _repo(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))


def _cr501(root: Path, use_cache: bool = False) -> list[str]:
    """``path:line message-head`` for each CR501 finding of a gate run over *root*."""
    report = run_gates(GateConfig(root=root), use_cache=use_cache)
    return [f"{v.path}:{v.line} {v.message.split(';')[0]}" for v in report.violations if v.rule == "CR501"]


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    _repo(
        tmp_path,
        {
            "lab/__init__.py": "",
            "lab/utils/__init__.py": "from .tokenizer import hf_tokenizer\n",
            "lab/utils/tokenizer.py": WRAPPER,
        },
    )
    return tmp_path


FORWARDED = "to hf_tokenizer(), forwarded by hf_tokenizer (lab/utils/tokenizer.py:6) to AutoTokenizer.from_pretrained"


@pytest.mark.parametrize(
    "caller",
    [
        "from lab.utils.tokenizer import hf_tokenizer\n\ndef f(p, t):\n    return hf_tokenizer(p, trust_remote_code=t)\n",
        "import lab.utils.tokenizer as tk\n\ndef f(p, t):\n    return tk.hf_tokenizer(p, trust_remote_code=t)\n",
        "import lab.utils.tokenizer\n\ndef f(p, t):\n    return lab.utils.tokenizer.hf_tokenizer(p, trust_remote_code=t)\n",
        "from lab.utils import hf_tokenizer as make\n\ndef f(p, t):\n    return make(p, trust_remote_code=t)\n",
        "from .tokenizer import hf_tokenizer\n\ndef f(p, t):\n    return hf_tokenizer(p, trust_remote_code=t)\n",
    ],
    ids=["from-module", "import-as", "import-dotted", "package-reexport", "relative"],
)
def test_a_cross_module_wrapper_carries_the_switch(pkg: Path, caller: str) -> None:
    _repo(pkg, {"lab/utils/caller.py": caller})
    assert _cr501(pkg) == [f"lab/utils/caller.py:4 trust_remote_code passed a value that may be True {FORWARDED}"]


def test_a_same_module_wrapper_carries_the_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    same = WRAPPER + "\n\ndef main(args):\n    return hf_tokenizer(args.p, trust_remote_code=args.trust)\n"
    _repo(tmp_path, {"train.py": same})
    assert _cr501(tmp_path) == [
        "train.py:28 trust_remote_code passed a value that may be True to hf_tokenizer(), "
        "forwarded by hf_tokenizer (train.py:6) to AutoTokenizer.from_pretrained"
    ]


def test_a_bare_name_is_this_modules_own_def_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two scripts outside any package share a module name; the one that neither defines nor imports the
    wrapper calls something else."""
    monkeypatch.chdir(tmp_path)
    _repo(tmp_path, {"a/train.py": WRAPPER, "b/train.py": "def f(p, t):\n    return hf_tokenizer(p, trust_remote_code=t)\n"})
    assert _cr501(tmp_path) == []


def test_a_literal_true_names_the_wrapper(pkg: Path) -> None:
    _repo(pkg, {"run.py": "from lab.utils import hf_tokenizer\n\ntok = hf_tokenizer('p', trust_remote_code=True)\n"})
    assert _cr501(pkg) == [f"run.py:3 trust_remote_code=True {FORWARDED}"]


@pytest.mark.parametrize(
    "call",
    [
        "hf_tokenizer(p, trust_remote_code=False)",  # literally off
        "hf_tokenizer(p, trust_remote_code=None)",  # the default
        "not_forwarding(p, trust_remote_code=t)",  # takes **kwargs but loads without them
        "own_switch(p, trust_remote_code=t)",  # its own parameter: never reaches **kwargs
        "pops_it(p, trust_remote_code=t)",  # removes it before the load
        "not_a_load(p, trust_remote_code=t)",  # forwards into something that loads nothing
        "hf_tokenizer(p, use_fast=t)",  # another keyword
    ],
)
def test_wrappers_that_do_not_forward_the_switch_stay_silent(pkg: Path, call: str) -> None:
    names = "hf_tokenizer, not_forwarding, own_switch, pops_it, not_a_load"
    _repo(pkg, {"run.py": f"from lab.utils.tokenizer import {names}\n\ndef f(p, t):\n    return {call}\n"})
    assert _cr501(pkg) == []


def test_an_unrelated_function_of_the_same_name_stays_silent(pkg: Path) -> None:
    """Resolution goes through the import table: another package's ``hf_tokenizer`` is not the wrapper."""
    _repo(pkg, {"run.py": "from other.lib import hf_tokenizer\n\ndef f(p, t):\n    return hf_tokenizer(p, trust_remote_code=t)\n"})
    assert _cr501(pkg) == []


def test_a_stale_cache_neither_hides_nor_shows_a_forwarded_finding(
    pkg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's bytes do not change, the wrapper does: the caller's cached findings must follow."""
    monkeypatch.setenv("CLEANROOM_CACHE_DIR", str(pkg / "user-cache"))
    _repo(pkg, {"run.py": "from lab.utils import hf_tokenizer\n\ndef f(p, t):\n    return hf_tokenizer(p, trust_remote_code=t)\n"})
    found = [f"run.py:4 trust_remote_code passed a value that may be True {FORWARDED}"]
    assert _cr501(pkg, use_cache=True) == found
    wrapper = pkg / "lab/utils/tokenizer.py"
    wrapper.write_text(WRAPPER.replace("from_pretrained(name_or_path, **kwargs)", "from_pretrained(name_or_path)"))
    assert _cr501(pkg, use_cache=True) == []  # no longer forwards: the cached finding is not shown
    wrapper.write_text("\n" + WRAPPER)
    assert _cr501(pkg, use_cache=True) == [found[0].replace("tokenizer.py:6", "tokenizer.py:7")]  # moved: named anew


def test_module_names_and_relative_imports(tmp_path: Path) -> None:
    _repo(tmp_path, {"a/__init__.py": "", "a/b/__init__.py": "", "a/b/c.py": "", "script.py": ""})
    assert module_name(tmp_path / "a/b/c.py") == "a.b.c"
    assert module_name(tmp_path / "a/b/__init__.py") == "a.b"
    assert module_name(tmp_path / "script.py") == "script"
    assert absolute(".c.f", "a.b") == "a.b.c.f"
    assert absolute("..x.f", "a.b") == "a.x.f"
    assert absolute("lab.f", "a.b") == "lab.f"


def test_a_files_wrappers_are_kept_by_content_so_a_warm_run_parses_nothing(tmp_path: Path) -> None:
    from cleanroom.code_gates.cache import ResultCache

    wrappers = [("hf_tokenizer", 6, "AutoTokenizer.from_pretrained")]
    cache = ResultCache(tmp_path)
    assert cache.facts("k", lambda: wrappers) == wrappers
    cache.save()
    assert ResultCache(tmp_path).facts("k", lambda: pytest.fail("recomputed")) == wrappers
    damaged = ResultCache(tmp_path)
    damaged._old["facts:k"] = [["hf_tokenizer", "six", "x"]]
    assert damaged.facts("k", lambda: wrappers) == wrappers  # a damaged entry is recomputed


def test_a_shadowing_parameter_or_comprehension_target_is_not_the_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare name is this module's wrapper only where no parameter, lambda parameter or comprehension target of
    that name stands between the call and the module; the module-level call beside them stays flagged."""
    monkeypatch.chdir(tmp_path)
    same = WRAPPER + (
        "\n\ndef run(hf_tokenizer, p, t):\n    return hf_tokenizer(p, trust_remote_code=t)\n"
        "\n\ndef each(makers, p, t):\n    return [hf_tokenizer(p, trust_remote_code=t) for hf_tokenizer in makers]\n"
        "\n\nuse = lambda hf_tokenizer, p, t: hf_tokenizer(p, trust_remote_code=t)\n"
        "\n\ndef main(p, t):\n    return hf_tokenizer(p, trust_remote_code=t)\n"
    )
    _repo(tmp_path, {"train.py": same})
    assert [f.split(" ")[0] for f in _cr501(tmp_path)] == ["train.py:39"]


def test_a_nested_scope_that_rebinds_the_spread_forwards_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``def outer(p, **kwargs)`` whose only spread into a load is a nested function's or lambda's own ``**kwargs``
    forwards nothing of the caller's; a nested function that closes over the outer ``kwargs`` does."""
    monkeypatch.chdir(tmp_path)
    source = """\
        from transformers import AutoTokenizer


        def outer(p, **kwargs):
            make = lambda **kwargs: AutoTokenizer.from_pretrained(p, **kwargs)
            return make(use_fast=True)


        def closure(p, **kwargs):
            def inner():
                return AutoTokenizer.from_pretrained(p, **kwargs)
            return inner()


        def main(p, t):
            a = outer(p, trust_remote_code=t)
            return a, closure(p, trust_remote_code=t)
        """
    _repo(tmp_path, {"train.py": source})
    assert _cr501(tmp_path) == [
        "train.py:17 trust_remote_code passed a value that may be True to closure(), "
        "forwarded by closure (train.py:11) to AutoTokenizer.from_pretrained"
    ]


METHODS = """\
from transformers import AutoModel, AutoTokenizer


class Loader:
    def load(self, path, **kw):
        return AutoModel.from_pretrained(path, **kw)

    @classmethod
    def make(cls, path, **kw):
        return AutoTokenizer.from_pretrained(path, **kw)

    def own_switch(self, path, trust_remote_code=False, **kw):
        return AutoModel.from_pretrained(path, **kw)

    def run(self, p, t, other):
        a = self.load(p, trust_remote_code=t)
        b = self.make(p, trust_remote_code=True)
        c = self.load(p, trust_remote_code=False)
        d = self.own_switch(p, trust_remote_code=t)
        e = other.load(p, trust_remote_code=t)
        f = self.missing(p, trust_remote_code=t)
        return a, b, c, d, e, f


class Other:
    def load(self, path, **kw):
        return dict(path=path, **kw)

    def run(self, p, t):
        return self.load(p, trust_remote_code=t)
"""


def test_a_method_that_forwards_kwargs_carries_the_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``self.load(p, trust_remote_code=t)`` where the enclosing class's own ``load`` spreads ``**kw`` into a load;
    a literal False, a method with its own switch, another receiver, a method the class does not define, and
    another class's method of the same name that loads nothing stay silent."""
    monkeypatch.chdir(tmp_path)
    _repo(tmp_path, {"lab.py": METHODS})
    assert _cr501(tmp_path) == [
        "lab.py:16 trust_remote_code passed a value that may be True to self.load(), "
        "forwarded by Loader.load (lab.py:6) to AutoModel.from_pretrained",
        "lab.py:17 trust_remote_code=True to self.make(), forwarded by Loader.make (lab.py:10) to AutoTokenizer.from_pretrained",
    ]


SPREAD_DICTS = """\
from transformers import AutoModel
from lab.utils import hf_tokenizer


class Trainer:
    def __init__(self, args):
        self.kw = {"trust_remote_code": args.trust_remote_code}

    def load(self, p):
        return AutoModel.from_pretrained(p, **self.kw)


def written(p, args):
    kw = {}
    kw["trust_remote_code"] = args.trust_remote_code
    return AutoModel.from_pretrained(p, **kw)


def updated(p, args):
    init_kwargs = dict(args.model_init_kwargs or {})
    init_kwargs.setdefault("trust_remote_code", args.trust_remote_code)
    return hf_tokenizer(p, **init_kwargs)


def updated_kw(p, t):
    options = {"revision": "main"}
    options.update(trust_remote_code=t)
    return AutoModel.from_pretrained(p, **options)


def literal(settings):
    settings["trust_remote_code"] = True
    return settings


def recorded(args):
    record = {}
    record["trust_remote_code"] = args.trust_remote_code
    off = {}
    off["trust_remote_code"] = False
    return record, off
"""


def test_trust_remote_code_written_into_a_spread_dict(pkg: Path) -> None:
    """The switch reaches a load (or a forwarding loader) through a dict bound to ``self.attr``, or written into a
    dict by a subscript, ``setdefault`` or ``update``: CR501 where it is written; ``True`` anywhere. A record never
    passed on, and a literal False, stay silent."""
    _repo(pkg, {"run.py": SPREAD_DICTS})
    assert [f.split(" ", 1)[0] for f in _cr501(pkg)] == ["run.py:7", "run.py:15", "run.py:21", "run.py:27", "run.py:32"]


def _dict_cr501(source: str) -> list[int]:
    """Lines of the CR501 findings in one module (*source* dedented)."""
    found = check_source(textwrap.dedent(source).encode(), "snippet.py").violations
    return [v.line for v in found if v.rule == "CR501"]


REMOVED = """\
from transformers import AutoModel


def deleted(p, t):
    kw = {}
    kw["trust_remote_code"] = t
    del kw["trust_remote_code"]
    return AutoModel.from_pretrained(p, **kw)


def popped(p, t):
    kw = {}
    kw.setdefault("trust_remote_code", t)
    kw.pop("trust_remote_code", None)
    return AutoModel.from_pretrained(p, **kw)


def literal_popped(p, t):
    kw = {"trust_remote_code": t, "revision": "main"}
    kw.pop("trust_remote_code")
    return AutoModel.from_pretrained(p, **kw)


def true_removed(p):
    kw = {"trust_remote_code": True}
    if p:
        del kw["trust_remote_code"]
        return AutoModel.from_pretrained(p, **kw)
    return None
"""


def test_a_key_removed_from_the_same_dict_before_it_is_spread_is_silent() -> None:
    """``del kw["trust_remote_code"]`` or ``kw.pop("trust_remote_code", ...)`` after the key is written, with every
    spread of ``kw`` after the removal: the load never sees the key (a literal True included)."""
    assert _dict_cr501(REMOVED) == []


REMOVED_TWINS = """\
from transformers import AutoModel


def other_branch(p, t, quiet):
    kw = {"trust_remote_code": True, "device_map": "auto"}
    if quiet:
        kw.pop("trust_remote_code")
        return kw
    return AutoModel.from_pretrained(p, **kw)


def spread_first(p, t):
    kw = {}
    kw["trust_remote_code"] = t
    model = AutoModel.from_pretrained(p, **kw)
    del kw["trust_remote_code"]
    return model, kw


def another_dict(p, t, extra):
    kw = {}
    kw["trust_remote_code"] = t
    extra.pop("trust_remote_code", None)
    return AutoModel.from_pretrained(p, **kw)


def removed_elsewhere(p, kw):
    kw.pop("trust_remote_code", None)


def written_here(p, t):
    kw = {}
    kw["trust_remote_code"] = t
    return AutoModel.from_pretrained(p, **kw)


def put_back(p, kw):
    trust = kw.pop("trust_remote_code", False)
    kw["trust_remote_code"] = trust or p.endswith("-remote")
    return AutoModel.from_pretrained(p, **kw)
"""


def test_a_removal_that_does_not_guard_every_spread_keeps_the_finding() -> None:
    """xtuner's shape (a pop in one branch, the spread in the other), a removal after the spread, a removal from
    another dict or from a same-named dict of another function, and a pop before the key is written back."""
    assert _dict_cr501(REMOVED_TWINS) == [5, 14, 22, 33, 39]


RECORDS = """\
import json
import logging

from transformers import AutoModel

logger = logging.getLogger(__name__)


def save_meta(args, path):
    meta = {}
    meta["trust_remote_code"] = args.trust_remote_code
    with open(path, "w") as f:
        json.dump(meta, f)


def log_run(args):
    info = {"model": args.model}
    info.update(trust_remote_code=args.trust_remote_code)
    logging.info("run %s", info)
    logger.info("run %s", {"trust_remote_code": args.trust_remote_code})


def results_row(args, rows):
    row = {}
    row.setdefault("trust_remote_code", args.trust_remote_code)
    rows.append(row)
    print(sorted(row), str({"trust_remote_code": args.trust_remote_code}))


def a(args):
    cfg = {}
    cfg["trust_remote_code"] = args.trust_remote_code
    show(cfg)


def show(cfg):
    print(sorted(cfg))


def b(p, cfg):
    return AutoModel.from_pretrained(p, **cfg)


class A:
    def __init__(self, args):
        self.meta = {"trust_remote_code": args.trust_remote_code}


class B:
    def show(self):
        print(self.meta)
        return AutoModel.from_pretrained("p", **self.meta)
"""


def test_a_record_of_the_setting_is_not_passed_on() -> None:
    """A dict dumped, logged, appended, printed or handed to a function here that only reads it, a same-named
    dict that another function spreads, and a ``self.meta`` that another class spreads: none reaches a load."""
    assert _dict_cr501(RECORDS) == []


PASSED_ON = """\
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
from vllm import LLM

from lab.cli import build_cli_args


def trl_shape(model_id, args):
    model_init_kwargs = args.model_init_kwargs or {}
    model_init_kwargs.setdefault("trust_remote_code", args.trust_remote_code)
    return create_model_from_path(model_id, **model_init_kwargs)


def copied(model_id, args):
    teacher_kwargs = args.teacher_kwargs or {}
    teacher_kwargs.setdefault("trust_remote_code", args.trust_remote_code)
    init_kwargs = dict(teacher_kwargs)
    return create_model_from_path(model_id, **init_kwargs)


def merged(p, t):
    extra = {}
    extra["trust_remote_code"] = t
    kw = {"revision": "main"}
    kw.update(extra)
    return AutoTokenizer.from_pretrained(p, **kw)


def to_a_local_spreader(args):
    from_pretrained_kwargs = {"trust_remote_code": args.trust_remote_code}
    return export(args.path, from_pretrained_kwargs=from_pretrained_kwargs)


def export(path, from_pretrained_kwargs):
    return AutoModelForCausalLM.from_pretrained(path, **from_pretrained_kwargs)


def to_another_module(self_config):
    args = {"trust_remote_code": self_config.trust_remote_code}
    return build_cli_args(args)


class Harness:
    def __init__(self, args):
        self.model_args = {"model": args.model}
        self.model_args["trust_remote_code"] = args.trust_remote_code

    def engine(self):
        return LLM(**self.model_args)


def create_model_from_path(model_id, **kwargs):
    return AutoModelForCausalLM.from_pretrained(model_id, **kwargs)


def into_kwargs(m, **kwargs):
    return pipeline("t", m, **kwargs)


def into_args(*args):
    return AutoModelForCausalLM.from_pretrained("p", **args[0])


def by_name(m, mk):
    return pipeline("t", m, model_kwargs=mk)


def to_local_functions(t):
    into_kwargs("m", model_kwargs={"trust_remote_code": t})
    into_args({"trust_remote_code": t})
    by_name("m", {"trust_remote_code": t})
"""


def test_a_dict_spread_copied_or_handed_on_stays_flagged() -> None:
    """trl's ``setdefault`` spread into its loader, a copy or a merge that is spread, a dict given to a function
    here that spreads that parameter (llm-foundry), one given to another module's function (verl, fail closed),
    lm-eval's ``self.model_args`` spread into ``LLM`` in the same class, and a dict given to a function here that
    takes it in ``**kwargs`` or ``*args`` or passes the parameter on by name (silent after the first narrowing)."""
    assert _dict_cr501(PASSED_ON) == [9, 15, 22, 29, 38, 45, 68, 69, 70]


NESTED_PATHS = """\
import logging

from transformers import AutoModel

logger = logging.getLogger(__name__)


def true_anywhere(cfg):
    cfg["model"]["trust_remote_code"] = True


def spread_at_its_path(p, cfg, t):
    cfg["model"]["trust_remote_code"] = t
    return AutoModel.from_pretrained(p, **cfg["model"])


def root_handed_on(cfg, t):
    cfg["model"].update(trust_remote_code=t)
    launch(cfg)


def three_deep(p, cfg, t):
    cfg["a"]["b"].setdefault("trust_remote_code", t)
    return AutoModel.from_pretrained(p, **cfg["a"])


def literal_at_a_path(cfg, t):
    cfg["model"] = {"trust_remote_code": t}
    launch(cfg)


def nested_literal(p, t):
    kwargs = {"model_kwargs": {"trust_remote_code": t}}
    return launch(p, **kwargs)


def aliased(p, cfg, t):
    cfg["model"]["trust_remote_code"] = t
    model = cfg["model"]
    return AutoModel.from_pretrained(p, **model)


def copied_into_a_path(cfg, t):
    inner = {"trust_remote_code": t}
    cfg["model"] = dict(inner)
    launch(cfg)


def logged(cfg, t):
    cfg["model"]["trust_remote_code"] = t
    print(cfg)
    logger.info("model %s", cfg["model"])


def sibling_spread(p, cfg, t):
    cfg["model"]["trust_remote_code"] = t
    return AutoModel.from_pretrained(p, **cfg["ref"])


def key_above_the_spread(p, cfg, t):
    cfg["trust_remote_code"] = t
    return AutoModel.from_pretrained(p, **cfg["model"])


class Holder:
    def __init__(self, t):
        self.cfg.model_kwargs["trust_remote_code"] = t
        self.own.model_kwargs["trust_remote_code"] = t

    def run(self, p):
        launch(self.cfg)
        return AutoModel.from_pretrained(p, **self.own.model_kwargs)
"""


def test_a_switch_at_a_nested_path_is_judged_with_the_dicts_that_hold_it() -> None:
    """``cfg["model"]["trust_remote_code"] = ...``: ``True`` anywhere; a value where ``cfg["model"]`` or ``cfg``
    is passed on (spread, handed to an unknown callee, aliased, a literal nested under ``"model"``, a dict copied to
    that path). Silent: a logged ``cfg``, a sibling path spread, a spread below the key's dict. An attribute is no
    part of its object, as before: ``launch(self.cfg)`` does not pass ``self.cfg.model_kwargs`` on (line 67), a spread
    of ``self.own.model_kwargs`` does (line 68)."""
    assert _dict_cr501(NESTED_PATHS) == [9, 13, 18, 23, 28, 33, 38, 44, 68]


REMOVED_AT_A_PATH = """\
from transformers import AutoModel


def deleted(p, cfg, t):
    cfg["model"]["trust_remote_code"] = t
    del cfg["model"]["trust_remote_code"]
    return AutoModel.from_pretrained(p, **cfg["model"])


def popped(cfg, t):
    cfg["model"].setdefault("trust_remote_code", t)
    cfg["model"].pop("trust_remote_code", None)
    launch(cfg)


def literal_popped(p, t):
    kw = {"model_kwargs": {"trust_remote_code": t}}
    kw["model_kwargs"].pop("trust_remote_code")
    return launch(p, **kw)


def another_path_removed(p, cfg, t):
    cfg["model"]["trust_remote_code"] = t
    cfg["ref"].pop("trust_remote_code", None)
    return AutoModel.from_pretrained(p, **cfg["model"])


def the_root_removed(cfg, t):
    cfg["model"]["trust_remote_code"] = t
    cfg.pop("trust_remote_code", None)
    launch(cfg)
"""


def test_a_removal_clears_only_its_own_path() -> None:
    """``del cfg["model"]["trust_remote_code"]`` or ``cfg["model"].pop(...)`` before every pass of ``cfg`` clears the
    key written at ``cfg["model"]`` (a nested literal's too); a removal at ``cfg["ref"]`` or at ``cfg`` does not."""
    assert _dict_cr501(REMOVED_AT_A_PATH) == [23, 29]


RETURNED = """\
import json

from transformers import AutoModel


def build(t):
    kw = {}
    kw["trust_remote_code"] = t
    return kw


def spread_call(p, t):
    return AutoModel.from_pretrained(p, **build(t))


def _options(t):
    return {"trust_remote_code": t, "revision": "main"}


def bound_then_spread(p, t):
    kw = _options(t)
    return AutoModel.from_pretrained(p, **kw)


def _inner(t):
    out = {}
    out.setdefault("trust_remote_code", t)
    return out


def _chained(t):
    opts = _inner(t)
    return dict(opts)


def through_a_parameter(p, t):
    return load(p, _chained(t))


def load(p, kw):
    return AutoModel.from_pretrained(p, **kw)


class Loader:
    def _kwargs(self, t):
        kw = {"revision": "main"}
        kw["trust_remote_code"] = t
        return kw

    def load(self, p, t):
        return AutoModel.from_pretrained(p, **self._kwargs(t))


def _record(t):
    row = {}
    row["trust_remote_code"] = t
    return row


def _removed(t):
    kw = {"trust_remote_code": t}
    kw.pop("trust_remote_code")
    return kw


def report(p, t, rows, f):
    print(_record(t))
    rows.append(_record(t))
    json.dump(_record(t), f)
    return AutoModel.from_pretrained(p, **_removed(t))


def settings(t):
    return {"trust_remote_code": t}


def _unused(t):
    return {"trust_remote_code": t}
"""


def test_a_dict_returned_is_passed_on_where_the_call_is() -> None:
    """The reviewer's probe p08: a dict built in one function and returned is passed on where a call of that function
    is (spread, bound and spread, handed to a function here that spreads it, through a chain of returns, a method's
    ``self._kwargs(t)``), and a public function's result (``settings``: other modules call it, unseen; fail closed,
    measured in docs/gates-precision.md, session 21). Silent: a private function's result only printed, appended or
    dumped, a key removed before the return, and a private function no call reaches."""
    assert _dict_cr501(RETURNED) == [8, 17, 27, 47, 74]


MERGED = """\
from transformers import AutoModel


def _defaults():
    return {"torch_dtype": "auto"}


def after_a_call(p, t):
    kw = {}
    kw["trust_remote_code"] = t
    merged = {**_defaults(), **kw}
    return AutoModel.from_pretrained(p, **merged)


def after_a_path(p, t, base):
    kw = {}
    kw["trust_remote_code"] = t
    merged = {**base, **kw}
    return AutoModel.from_pretrained(p, **merged)


def spread_merged(p, t, base):
    kw = {}
    kw["trust_remote_code"] = t
    return AutoModel.from_pretrained(p, **{**base, **kw})


def _build(t):
    kw = {}
    kw["trust_remote_code"] = t
    return kw


def a_result_copied(p, t):
    kw = _build(t).copy()
    return AutoModel.from_pretrained(p, **kw)


def not_merged(p, t, base):
    kw = {}
    kw["trust_remote_code"] = t
    merged = {**_defaults(), **base}
    print(kw)
    return AutoModel.from_pretrained(p, **merged)
"""


def test_every_dict_merged_into_a_literal_is_copied() -> None:
    """The reviewer's p4/p8: ``{**_defaults(), **kw}`` and ``{**base, **kw}`` copy ``kw`` (every ``**`` source, not only
    the first), bound or spread; ``_build(t).copy()`` copies the result of a function that returns the switch (as
    ``dict(_build(t))`` does). A merge without the dict that holds the key stays silent."""
    assert _dict_cr501(MERGED) == [10, 17, 24, 30]


POPPED_PARENT = """\
from transformers import AutoModel


def dropped(t, train):
    cfg = {"lr": 1, "model_kwargs": {"trust_remote_code": t}}
    cfg.pop("model_kwargs")
    train(**cfg)


def deleted(t, train):
    cfg = {"lr": 1}
    cfg["model_kwargs"]["trust_remote_code"] = t
    del cfg["model_kwargs"]
    train(**cfg)


def popped_then_spread(p, t, train):
    cfg = {"lr": 1, "model_kwargs": {"trust_remote_code": t}}
    model_kwargs = cfg.pop("model_kwargs")
    train(**cfg)
    return AutoModel.from_pretrained(p, **model_kwargs)


def spread_as_popped(p, t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    return AutoModel.from_pretrained(p, **cfg.pop("model_kwargs"))


def another_key_popped(t, train):
    cfg = {"lr": 1, "model_kwargs": {"trust_remote_code": t}}
    cfg.pop("lr")
    train(**cfg)


def popped_on_one_branch(t, train, quiet):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    if quiet:
        cfg.pop("model_kwargs")
    train(**cfg)
"""


def test_a_dict_removed_from_the_one_that_holds_it_takes_the_key_along() -> None:
    """The reviewer's f10: ``cfg.pop("model_kwargs")`` or ``del cfg["model_kwargs"]`` before every pass of ``cfg``
    removes the switch under that key: silent. The popped dict is a copy of ``cfg["model_kwargs"]``, so spread it
    still carries the switch (bound first or not); popping another key, or popping on one branch, clears nothing."""
    assert _dict_cr501(POPPED_PARENT) == [18, 25, 30, 36]


PATH_NAMES = """\
def odd_key(t, g):
    cfg = {}
    cfg["a\\nb"]["trust_remote_code"] = t
    g(cfg)


def deep(t, g):
    cfg = {}
    cfg["k0"]["k1"]["k2"]["k3"]["k4"]["k5"]["trust_remote_code"] = t
    g(cfg)


def four(t, g):
    cfg = {}
    cfg["k0"]["k1"]["k2"]["k3"]["trust_remote_code"] = t
    g(cfg)
"""


def test_a_path_is_named_on_one_line_and_cut_when_deep() -> None:
    """The reviewer's p6/p5: each key of a path is shown as a JSON string (a newline in a key cannot split the report
    or start a forged GitHub annotation line), and a path of more than four keys shows its first two and its last."""
    found = check_source(textwrap.dedent(PATH_NAMES).encode(), "snippet.py").violations
    names = [v.message.split(", which")[0].removeprefix("trust_remote_code written into ") for v in found]
    assert names == ['cfg["a\\nb"]', 'cfg["k0"]["k1"]…["k5"]', 'cfg["k0"]["k1"]["k2"]["k3"]']
    assert all("\n" not in v.message for v in found)


NOT_FORWARDED = """\
from transformers import AutoModel


def rebound(p, **kw):
    kw = {"revision": "main"}
    return AutoModel.from_pretrained(p, **kw)


def explicit(p, **kw):
    return AutoModel.from_pretrained(p, trust_remote_code=False, **kw)


class Loader:
    def load(self, p, **kw):
        kw = {"revision": "main"}
        return AutoModel.from_pretrained(p, **kw)

    def strict(self, p, **kw):
        return AutoModel.from_pretrained(p, trust_remote_code=False, **kw)

    def run(self, p, t):
        return self.load(p, trust_remote_code=t), self.strict(p, trust_remote_code=t)


def main(p, t):
    return rebound(p, trust_remote_code=t), explicit(p, trust_remote_code=t)
"""

STILL_FORWARDED = """\
from transformers import AutoModel


def extended(p, **kw):
    kw = {**kw, "revision": "main"}
    return AutoModel.from_pretrained(p, **kw)


def maybe_rebound(p, fresh, **kw):
    if fresh:
        kw = {}
    return AutoModel.from_pretrained(p, **kw)


def rebound_after(p, **kw):
    model = AutoModel.from_pretrained(p, **kw)
    kw = {}
    return model, kw


class Loader:
    def load(self, p, **kw):
        kw = dict(kw)
        return AutoModel.from_pretrained(p, **kw)

    def run(self, p, t):
        return self.load(p, trust_remote_code=t)


def main(p, t):
    return extended(p, trust_remote_code=t), maybe_rebound(p, t, trust_remote_code=t), rebound_after(p, trust_remote_code=t)
"""


def test_a_spread_rebound_before_the_load_or_beside_an_explicit_switch_forwards_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kw = {...}`` (not reading ``kw``) in a statement that always runs before the load, or a load given its own
    ``trust_remote_code=`` beside ``**kw`` (a caller's key would be a duplicate keyword): the caller's switch does
    not reach the load, for functions and methods alike."""
    monkeypatch.chdir(tmp_path)
    _repo(tmp_path, {"lab.py": NOT_FORWARDED})
    assert _cr501(tmp_path) == []


def test_a_spread_extended_rebound_on_one_branch_or_after_the_load_still_forwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _repo(tmp_path, {"lab.py": STILL_FORWARDED})
    assert [f.split(" ", 1)[0] for f in _cr501(tmp_path)] == ["lab.py:27", "lab.py:31"]

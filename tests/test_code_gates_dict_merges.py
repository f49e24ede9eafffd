"""A dict merged with ``|``/``|=`` or read out of another by ``.get`` carries ``trust_remote_code`` to a load (CR501),
as ``{**a, **b}``, ``b.update(a)`` and ``cfg["key"]`` do; the same shapes that never reach a load stay silent."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Callable

import pytest

from cleanroom.code_gates import check_source
from cleanroom.code_gates.names import Names
from cleanroom.code_gates.prefilter import needs_ast
from cleanroom.code_gates.walk import collect


def _cr501(source: str) -> list[int]:
    """Lines of the CR501 findings in one module (*source* dedented), after checking the prefilter keeps it."""
    code = textwrap.dedent(source)
    assert needs_ast(compile(code, "snippet.py", "exec"), code)
    return [v.line for v in check_source(code.encode(), "snippet.py").violations if v.rule == "CR501"]


MERGED_WITH_OR = """\
from transformers import AutoModel


def literal_on_the_right(p, t, base):
    kw = base | {"trust_remote_code": t}
    return AutoModel.from_pretrained(p, **kw)


def literal_on_the_left(p, t, extra):
    kw = {"trust_remote_code": t} | extra
    return AutoModel.from_pretrained(p, **kw)


def augmented(p, t):
    kw = {"revision": "main"}
    kw |= {"trust_remote_code": t}
    return AutoModel.from_pretrained(p, **kw)


def a_dict_that_carries_it(p, t, base):
    kw = {}
    kw["trust_remote_code"] = t
    opts = base | kw
    return AutoModel.from_pretrained(p, **opts)


def updated_with_a_merge(p, t, base):
    kw = {}
    kw.update(base | {"trust_remote_code": t})
    return AutoModel.from_pretrained(p, **kw)


def spread_as_merged(p, t, base):
    return AutoModel.from_pretrained(p, **(base | {"trust_remote_code": t}))


def _opts(t, base):
    return base | {"trust_remote_code": t}


def returned(p, t, base):
    return AutoModel.from_pretrained(p, **_opts(t, base))


def a_literal_merged_into_a_literal(p, t, base):
    kw = {**base, **{"trust_remote_code": t}}
    return AutoModel.from_pretrained(p, **kw)
"""


def test_a_dict_merged_with_or_carries_the_switch() -> None:
    """``a | b`` is ``{**a, **b}`` and ``a |= b`` is ``a.update(b)``: a key-holding literal on either side, or a dict
    that holds the key (line 22, the write), merged and spread, bound, updated into a dict, spread as the merge itself or
    returned by a function here; and a literal merged into a literal by ``**`` (the path ``|`` reuses). All silent
    before session 22."""
    assert _cr501(MERGED_WITH_OR) == [5, 10, 16, 22, 29, 34, 38, 46]


MERGED_NOT_PASSED = """\
import json
import logging

from transformers import AutoModel

logger = logging.getLogger(__name__)


def dumped(t, base, f):
    kw = base | {"trust_remote_code": t}
    json.dump(kw, f)


def a_merge_printed(t, base):
    kw = {}
    kw["trust_remote_code"] = t
    opts = base | kw
    print(opts)


def augmented_then_logged(t):
    row = {"lr": 1}
    row |= {"trust_remote_code": t}
    logger.info("row %s", row)


def a_literal_false(p, extra):
    kw = {"trust_remote_code": False} | extra
    return AutoModel.from_pretrained(p, **kw)


def removed_before_the_load(p, t, base):
    kw = base | {"trust_remote_code": t}
    del kw["trust_remote_code"]
    return AutoModel.from_pretrained(p, **kw)


def merged_without_it(p, t, base, extra):
    kw = {}
    kw["trust_remote_code"] = t
    print(kw)
    return AutoModel.from_pretrained(p, **(base | extra))


def bits(a, b):
    return a | b
"""


def test_a_merge_that_never_reaches_a_load_stays_silent() -> None:
    """The precision twin: the same merges dumped, printed or logged, a literal False merged, the key removed before
    the spread, a merge of dicts without the key, and ``|`` on anything else."""
    assert _cr501(MERGED_NOT_PASSED) == []


READ_WITH_GET = """\
from transformers import AutoModel


def spread_as_read(p, t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    return AutoModel.from_pretrained(p, **cfg.get("model_kwargs", {}))


def bound_then_spread(p, t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    mk = cfg.get("model_kwargs")
    return AutoModel.from_pretrained(p, **mk)


def two_reads(p, t):
    cfg = {"a": {"b": {"trust_remote_code": t}}}
    return AutoModel.from_pretrained(p, **cfg.get("a", {}).get("b", {}))


def written_through_a_read(cfg, t, launch):
    cfg.get("model_kwargs")["trust_remote_code"] = t
    launch(cfg)


def handed_on_as_read(t, launch):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    launch(cfg.get("model_kwargs"))


def a_literal_default(p, t, cfg):
    mk = cfg.get("model_kwargs", {"trust_remote_code": t})
    return AutoModel.from_pretrained(p, **mk)


def a_default_that_carries_it(p, t, cfg):
    kw = {}
    kw["trust_remote_code"] = t
    return AutoModel.from_pretrained(p, **cfg.get("model_kwargs", kw))
"""


def test_a_dict_read_by_get_is_the_same_path_as_the_subscript() -> None:
    """``cfg.get("k")`` and ``cfg.get("k", default)`` name ``cfg["k"]``: spread, bound and spread, read twice, written
    into through the read, handed to an unknown callee; the default is a second source (a literal that holds the key,
    a dict the key is written into). The first four were silent before session 22; the last two were flagged only
    because ``cfg.get`` was an unknown callee handed the default."""
    assert _cr501(READ_WITH_GET) == [5, 10, 16, 21, 26, 31, 37]


READ_NOT_PASSED = """\
import logging

from transformers import AutoModel

logger = logging.getLogger(__name__)


def a_sibling_read(p, t):
    cfg = {"model_kwargs": {"trust_remote_code": t}, "ref_kwargs": {}}
    return AutoModel.from_pretrained(p, **cfg.get("ref_kwargs", {}))


def read_and_logged(t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    mk = cfg.get("model_kwargs")
    logger.info("model kwargs %s", mk)
    print(cfg.get("model_kwargs", {}))


def a_default_printed(cfg, t):
    print(cfg.get("model_kwargs", {"trust_remote_code": t}))


def another_default(p, t, cfg):
    kw = {"trust_remote_code": t}
    print(kw)
    return AutoModel.from_pretrained(p, **cfg.get("model_kwargs", {"revision": "main"}))


def removed_through_a_read(p, t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    cfg.get("model_kwargs").pop("trust_remote_code", None)
    return AutoModel.from_pretrained(p, **cfg["model_kwargs"])


class Store:
    def get(self, key):
        return {}

    def run(self, p, t):
        self.kw = {"trust_remote_code": t}
        print(self.kw)
        return AutoModel.from_pretrained(p, **self.get("kw"))
"""


def test_a_read_that_never_reaches_a_load_stays_silent() -> None:
    """The precision twin: a sibling key read and spread, a read only logged or printed, a key-holding default only
    printed (a read, not a callee: flagged before session 22), another default spread, the key removed through a read
    (a false alarm before session 22), and ``self.get(...)``, the class's own method, not a read of ``self``."""
    assert _cr501(READ_NOT_PASSED) == []


# Each shape below reaches a load with a ``trust_remote_code`` literal inside a ``.get`` default or a merge that a
# wrapper (a conditional, ``or``, a copy, a tuple, a walrus, a list) hides: all silent on 254af20 (session 22's first
# cut followed a ``.get``/merge only as a store value, spread, argument or return value); b11-b13 were silent before.
WRAPPED = {
    "ifexp": 'kw = cfg.get("m", {"trust_remote_code": t}) if c else {}\n    AutoModel.from_pretrained(p, **kw)',
    "or": 'kw = cfg.get("m", {"trust_remote_code": t}) or {}\n    AutoModel.from_pretrained(p, **kw)',
    "dict_call": 'kw = dict(cfg.get("m", {"trust_remote_code": t}))\n    AutoModel.from_pretrained(p, **kw)',
    "copy_method": 'kw = cfg.get("m", {"trust_remote_code": t}).copy()\n    AutoModel.from_pretrained(p, **kw)',
    "deepcopy": 'kw = copy.deepcopy(cfg.get("m", {"trust_remote_code": t}))\n    AutoModel.from_pretrained(p, **kw)',
    "spread_dict_call": 'AutoModel.from_pretrained(p, **dict(cfg.get("m", {"trust_remote_code": t})))',
    "spread_or": 'AutoModel.from_pretrained(p, **(cfg.get("m", {"trust_remote_code": t}) or {}))',
    "tuple": 'kw, n = cfg.get("m", {"trust_remote_code": t}), 1\n    AutoModel.from_pretrained(p, **kw)',
    "walrus": 'if kw := cfg.get("m", {"trust_remote_code": t}):\n        AutoModel.from_pretrained(p, **kw)',
    "literal_in_dict_call": 'AutoModel.from_pretrained(p, **dict({"trust_remote_code": t}))',
    "merge_in_dict_call": 'AutoModel.from_pretrained(p, **dict(cfg | {"trust_remote_code": t}))',
    "merge_in_ifexp": 'kw = cfg | {"trust_remote_code": t} if c else cfg\n    AutoModel.from_pretrained(p, **kw)',
    "in_a_list": 'kws = [cfg.get("m", {"trust_remote_code": t})]\n    AutoModel.from_pretrained(p, **kws[0])',
    "returned_ifexp": 'return _built(cfg, t, c)\n\n\ndef _built(cfg, t, c):\n    '
    'return cfg.get("m", {"trust_remote_code": t}) if c else {}\n\n\ndef use(p, cfg, t):\n    '
    "AutoModel.from_pretrained(p, **_built(cfg, t, 1))",
    "or_to_a_local_loader": '_load(p, cfg.get("m", {"trust_remote_code": t}) or {})\n\n\ndef _load(p, kw):\n    '
    "return AutoModel.from_pretrained(p, **kw)",
}
_WRAPPED_HEAD = "import copy\n\nfrom transformers import AutoModel\n\n\ndef f(p, cfg, t, c):\n    "


@pytest.mark.parametrize("body", WRAPPED.values(), ids=WRAPPED.keys())
def test_a_wrapped_default_or_merge_that_reaches_a_load_is_reported(body: str) -> None:
    """A key-holding ``.get`` default or merge passed unchanged through ``a if c else b``, ``a or b``, ``dict(a)``,
    ``a.copy()`` or ``copy.deepcopy(a)`` lies where the wrapper does; one standing where the flow follows nothing (a
    tuple, a walrus, a list) is passed on (fail closed). Reported at the literal's key."""
    source = _WRAPPED_HEAD + body + "\n"
    line = next(i for i, text in enumerate(source.splitlines(), 1) if '"trust_remote_code"' in text)
    assert _cr501(source) == [line]


WRAPPED_NOT_PASSED = """\
import copy
import json
import logging

logger = logging.getLogger(__name__)


def printed(cfg, t, c, f):
    print(cfg.get("m", {"trust_remote_code": t}))
    print(cfg.get("m", {"trust_remote_code": t}) or {})
    kw = cfg.get("m", {"trust_remote_code": t}) if c else {}
    print(kw)
    json.dump(dict(cfg.get("m", {"trust_remote_code": t})), f)
    logger.info("%s", copy.deepcopy(cfg | {"trust_remote_code": t}))
    row = cfg.get("m", {"trust_remote_code": t}).copy()
    logger.info("%s", row)


def _built(cfg, t, c):
    return cfg.get("m", {"trust_remote_code": t}) if c else {}


def shown(cfg, t):
    print(_built(cfg, t, 1))
"""


def test_a_wrapped_default_or_merge_that_never_reaches_a_load_stays_silent() -> None:
    """The precision twin: the same wrappers printed, dumped, logged, bound and logged, or returned by a private
    function whose result is only printed."""
    assert _cr501(WRAPPED_NOT_PASSED) == []


def _get_chain(depth: int) -> str:
    chain = "cfg" + '.get("a", {})' * depth
    return f'from transformers import AutoModel\n\n\ndef f(p, t):\n    cfg = {{"a": {{"trust_remote_code": t}}}}\n    AutoModel.from_pretrained(p, **{chain})\n'


def resolve_calls(monkeypatch: pytest.MonkeyPatch, run: Callable[[], object]) -> int:
    """How many times :meth:`Names.resolve` runs (recursion included) while *run* runs."""
    count = 0
    resolve = Names.resolve

    def counted(self: Names, node: ast.AST) -> str | None:
        nonlocal count
        count += 1
        return resolve(self, node)

    with monkeypatch.context() as patch:
        patch.setattr(Names, "resolve", counted)
        run()
    return count


@pytest.mark.parametrize("depth", [10, 20, 40])
def test_a_get_chain_resolves_its_callee_once_per_link(monkeypatch: pytest.MonkeyPatch, depth: int) -> None:
    """``cfg.get("a", {}).get("a", {})...``: resolving the outermost call walks the chain once (each callee resolved
    once, not once per question asked of it: that doubled the work per link, over 100 s at depth 30), and checking the
    module resolves each of its calls so (at most quadratic in the depth, never exponential). The code is checked
    (the key lies at ``cfg["a"]``; the chain reads ``cfg["a"]["a"]...``, which does not hold it: silent)."""
    source = _get_chain(depth)
    tree = ast.parse(source)
    outer = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.keywords)
    names = Names(collect(tree))
    assert resolve_calls(monkeypatch, lambda: names.resolve(outer.keywords[0].value)) <= 3 * depth
    assert resolve_calls(monkeypatch, lambda: _cr501(source)) <= 4 * depth * depth

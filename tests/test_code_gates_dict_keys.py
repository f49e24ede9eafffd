"""A dict reached by ``setdefault``, by a key held in a name, or by a key of a merge carries ``trust_remote_code`` to a
load (CR501), as ``cfg["key"]`` does; the same shapes that never reach a load, or set the switch to a literal False,
stay silent."""

from __future__ import annotations

import textwrap

import pytest

from cleanroom.code_gates import check_source
from cleanroom.code_gates.prefilter import needs_ast

from .test_code_gates_dict_merges import resolve_calls


def _cr501(source: str) -> list[int]:
    """Lines of the CR501 findings in one module (*source* dedented), after checking the prefilter keeps it."""
    code = textwrap.dedent(source)
    assert needs_ast(compile(code, "snippet.py", "exec"), code)
    return [v.line for v in check_source(code.encode(), "snippet.py").violations if v.rule == "CR501"]


SET_DEFAULT = """\
from transformers import AutoModel

from .models import load_model


def spread_as_read(name, t, **kwargs):
    kwargs.setdefault("model_kwargs", {})["trust_remote_code"] = t
    return AutoModel.from_pretrained(name, **kwargs["model_kwargs"])


def through_a_wrapper(name, **kwargs):
    kwargs.setdefault("model_kwargs", {})["trust_remote_code"] = True
    return load_model(name, **kwargs)


def bound_then_spread(name, t, opts):
    mk = opts.setdefault("model_kwargs", {})
    mk["trust_remote_code"] = t
    return AutoModel.from_pretrained(name, **opts["model_kwargs"])


def a_default_that_holds_it(name, t, opts):
    opts.setdefault("model_kwargs", {"trust_remote_code": t})
    return AutoModel.from_pretrained(name, **opts["model_kwargs"])


def two_levels(name, t, cfg):
    cfg.setdefault("a", {}).setdefault("b", {})["trust_remote_code"] = t
    return AutoModel.from_pretrained(name, **cfg["a"]["b"])
"""


def test_a_dict_reached_by_setdefault_carries_the_switch() -> None:
    """``d.setdefault("k", default)`` names ``d["k"]`` (as ``d.get("k", default)`` does) and stores its default there:
    a key written through it, bound from it, or held by its default reaches the load where ``d["k"]`` or ``d`` is
    spread. All silent before session 23 (the write's owner named no path)."""
    assert _cr501(SET_DEFAULT) == [7, 12, 18, 23, 28]


SET_DEFAULT_NOT_PASSED = """\
import json

from transformers import AutoModel


def recorded(name, t, row, f):
    row.setdefault("model_kwargs", {})["trust_remote_code"] = t
    json.dump(row, f)


def a_literal_false(name, **kwargs):
    kwargs.setdefault("model_kwargs", {})["trust_remote_code"] = False
    return AutoModel.from_pretrained(name, **kwargs["model_kwargs"])


def a_sibling_spread(name, t, opts):
    opts.setdefault("model_kwargs", {})["trust_remote_code"] = t
    return AutoModel.from_pretrained(name, **opts["ref_kwargs"])


def removed_before_the_load(name, t, opts):
    opts.setdefault("model_kwargs", {})["trust_remote_code"] = t
    opts["model_kwargs"].pop("trust_remote_code", None)
    return AutoModel.from_pretrained(name, **opts["model_kwargs"])
"""


def test_a_setdefault_that_never_reaches_a_load_stays_silent() -> None:
    """The precision twin: the same write into a record that is only dumped, a literal False, a sibling key spread,
    the key removed before the spread."""
    assert _cr501(SET_DEFAULT_NOT_PASSED) == []


NAMED_KEYS = """\
from transformers import AutoModel

MODEL_KWARGS = "model_kwargs"


def read_by_get(p, t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    return AutoModel.from_pretrained(p, **cfg.get(MODEL_KWARGS, {}))


def read_by_subscript(p, t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    return AutoModel.from_pretrained(p, **cfg[MODEL_KWARGS])


def a_local_name(p, t, cfg):
    key = "model_kwargs"
    cfg["model_kwargs"] = {"trust_remote_code": t}
    mk = cfg.get(key)
    return AutoModel.from_pretrained(p, **mk)


def written_through_a_named_key(p, t, cfg):
    cfg.setdefault(MODEL_KWARGS, {})["trust_remote_code"] = t
    return AutoModel.from_pretrained(p, **cfg["model_kwargs"])
"""


def test_a_key_held_in_a_name_bound_once_to_a_string_is_that_key() -> None:
    """A key given as a name the scope binds once, to a string literal (a module constant, or a local), is read as that
    literal: ``cfg.get(MODEL_KWARGS)`` and ``cfg[MODEL_KWARGS]`` name ``cfg["model_kwargs"]``. All silent before
    session 23 (a non-literal key named no path)."""
    assert _cr501(NAMED_KEYS) == [7, 12, 18, 24]


NAMED_KEYS_NOT_RESOLVED = """\
from transformers import AutoModel

MODEL_KWARGS = "model_kwargs"
REF_KWARGS = "ref_kwargs"
TWICE = "model_kwargs"
TWICE = "ref_kwargs"


def a_sibling(p, t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    return AutoModel.from_pretrained(p, **cfg.get(REF_KWARGS, {}))


def only_printed(t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    print(cfg.get(MODEL_KWARGS))


def a_parameter_shadows_it(p, t, MODEL_KWARGS):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    print(cfg)
    return AutoModel.from_pretrained(p, **cfg[MODEL_KWARGS])


def bound_twice(p, t):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    print(cfg)
    return AutoModel.from_pretrained(p, **cfg.get(TWICE, {}))


def a_literal_false(p):
    cfg = {"model_kwargs": {"trust_remote_code": False}}
    return AutoModel.from_pretrained(p, **cfg.get(MODEL_KWARGS, {}))
"""


def test_a_named_key_that_is_another_key_or_unknown_stays_silent() -> None:
    """The precision twin: a constant naming a sibling key, a read only printed, a parameter that shadows the constant
    and a name bound twice (unknown keys: not traced, as a non-literal key was before), and a literal False."""
    assert _cr501(NAMED_KEYS_NOT_RESOLVED) == []


MERGE_SUBSCRIPTED = """\
from transformers import AutoModel


def spread(p, t, extra):
    base = {"model_kwargs": {"trust_remote_code": t}}
    return AutoModel.from_pretrained(p, **(base | extra)["model_kwargs"])


def on_the_right(p, t, defaults):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    mk = (defaults | cfg)["model_kwargs"]
    return AutoModel.from_pretrained(p, **mk)


def read_by_get(p, t, defaults):
    cfg = {}
    cfg["model_kwargs"] = {"trust_remote_code": t}
    return AutoModel.from_pretrained(p, **({**defaults, **cfg}).get("model_kwargs", {}))
"""


def test_a_key_of_a_parenthesised_merge_is_that_key_of_each_operand() -> None:
    """``(a | b)["k"]`` (or ``{**a, **b}.get("k")``) is ``a["k"]`` or ``b["k"]``: each operand's dict under that key is
    read out. All silent before session 23 (a subscript of a merge named no path)."""
    assert _cr501(MERGE_SUBSCRIPTED) == [5, 10, 17]


MERGE_SUBSCRIPTED_NOT_PASSED = """\
from transformers import AutoModel


def a_sibling_key(p, t, extra):
    base = {"model_kwargs": {"trust_remote_code": t}}
    return AutoModel.from_pretrained(p, **(base | extra)["ref_kwargs"])


def only_printed(t, defaults):
    cfg = {"model_kwargs": {"trust_remote_code": t}}
    print((defaults | cfg)["model_kwargs"])


def a_literal_false(p, extra):
    base = {"model_kwargs": {"trust_remote_code": False}}
    return AutoModel.from_pretrained(p, **(base | extra)["model_kwargs"])
"""


def test_a_key_of_a_merge_that_never_reaches_a_load_stays_silent() -> None:
    """The precision twin: a sibling key of the merge spread, the merge's key only printed, a literal False."""
    assert _cr501(MERGE_SUBSCRIPTED_NOT_PASSED) == []


def _read_out_chain(depth: int) -> str:
    chain = "(base | extra)" + '.get("a", {})' * depth
    return (
        "from transformers import AutoModel\n\n\ndef f(p, t, extra):\n"
        f'    base = {{"a": {{"trust_remote_code": t}}}}\n    AutoModel.from_pretrained(p, **{chain})\n'
    )


@pytest.mark.parametrize("depth", [10, 20, 40])
def test_a_get_chain_on_a_merge_resolves_its_callee_once_per_link(monkeypatch: pytest.MonkeyPatch, depth: int) -> None:
    """``(base | extra).get("a", {}).get("a", {})...``: reading the keys out of the merge walks the chain once per
    question (no more than the same chain on a name: at most quadratic in the depth, never exponential). The chain
    reads ``base["a"]["a"]...``, which does not hold the key: silent."""
    source = _read_out_chain(depth)
    assert resolve_calls(monkeypatch, lambda: _cr501(source)) <= 4 * depth * depth
    assert _cr501(source) == []


BOUND_TWICE = """\
from transformers import AutoModel


def kept_by_its_name_after_the_pop(p, opts):
    mk = opts.setdefault("m", {"trust_remote_code": True})
    opts.pop("m")
    return AutoModel.from_pretrained(p, **mk)


def kept_by_the_other_name(p, t):
    a = b = {"trust_remote_code": t}
    del b["trust_remote_code"]
    return AutoModel.from_pretrained(p, **a)


def removed_at_both(p, opts):
    mk = opts.setdefault("m", {"trust_remote_code": True})
    opts.pop("m")
    mk.pop("trust_remote_code")
    return AutoModel.from_pretrained(p, **mk)
"""


def test_a_dict_bound_at_two_paths_is_removed_only_where_every_path_drops_it() -> None:
    """A literal bound at two paths (``m = d.setdefault("m", {...})``, ``a = b = {...}``) still reaches the load through
    the path that kept it when the other drops it; only a removal at every path silences it (review, session 23: the
    last binding alone was judged, so the first two were silent)."""
    assert _cr501(BOUND_TWICE) == [5, 11]


NAMED_KEY_LITERALS = """\
import json

from transformers import AutoModel

KEY = "trust_remote_code"
OTHER = "revision"


def named_key_variable(p, t):
    kw = {KEY: t}
    return AutoModel.from_pretrained(p, **kw)


def named_key_true(p):
    kw = {"a": 1, KEY: True}
    return AutoModel.from_pretrained(p, **kw)


def named_key_false(p):
    kw = {KEY: False}
    return AutoModel.from_pretrained(p, **kw)


def another_named_key(p, t):
    kw = {OTHER: t}
    return AutoModel.from_pretrained(p, **kw)


def named_key_only_recorded(t):
    json.dumps({KEY: t})
"""


def test_a_dict_literal_whose_key_is_a_name_bound_to_the_switch_carries_it() -> None:
    """``{KEY: t}`` with ``KEY = "trust_remote_code"`` is the literal key (as ``cfg[KEY]`` already was); a literal False,
    another key and a dict that reaches no load stay silent."""
    assert _cr501(NAMED_KEY_LITERALS) == [10, 15]

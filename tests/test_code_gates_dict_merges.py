"""A dict merged with ``|``/``|=`` or read out of another by ``.get`` carries ``trust_remote_code`` to a load (CR501),
as ``{**a, **b}``, ``b.update(a)`` and ``cfg["key"]`` do; the same shapes that never reach a load stay silent."""

from __future__ import annotations

import textwrap

from cleanroom.code_gates import check_source
from cleanroom.code_gates.prefilter import needs_ast


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

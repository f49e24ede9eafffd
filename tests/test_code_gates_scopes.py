"""A name is looked up in the scope Python would look it up in: a comprehension's target and a lambda's parameter
are their own scope, ``global`` shares a name between functions. No false alarm where the same name means
something else, no miss where a binding in another function is the one read."""

from __future__ import annotations

import pytest

from .test_code_gates_misses import rules

# Each case: (snippet, findings other than CR101 it must give, exactly).
CASES = {
    # ``[llm.chat(m) for llm in engines]`` beside ``llm = LLM(...)``: the comprehension's llm is each engine.
    "comprehension, generator and lambda targets shadow the engine, the function's own call stays flagged": (
        """
        from vllm import LLM

        def main(engines, m):
            llm = LLM(model="p")
            outs = [llm.chat(m) for llm in engines]
            gen = (llm.chat(m) for llm in engines)
            firsts = {llm: llm.chat(m) for llm in engines}
            pick = lambda llm: llm.chat(m)
            nested = [[llm.chat(x) for x in m] for llm in engines]
            return llm.chat(m)
        """,
        [(11, "CR202")],
    ),
    "a comprehension over something else still reads the function's engine": (
        """
        from vllm import LLM

        def main(batches):
            llm = LLM(model="p")
            outs = [llm.chat(m) for m in batches]
            later = [x for x in llm.chat(batches)]
            call = lambda m: llm.chat(m)
            return outs, later, call
        """,
        [(6, "CR202"), (7, "CR202"), (8, "CR202")],
    ),
    "the comprehension's target does not leak: after it, llm is the function's engine again": (
        """
        from vllm import LLM

        def main(engines, m):
            names = [llm.name for llm in engines]
            llm = LLM(model="p")
            return llm.chat(m)
        """,
        [(7, "CR202")],
    ),
    "a walrus in a comprehension binds in the function": (
        """
        from vllm import LLM

        def main(paths, m):
            engines = [(llm := LLM(model=p)) for p in paths]
            return llm.chat(m)
        """,
        [(6, "CR202")],
    ),
    "an engine bound with global in one function and used in another": (
        """
        from vllm import LLM

        llm = None

        def init(path):
            global llm
            llm = LLM(model=path)

        def run(m):
            return llm.chat(m)

        def also(m):
            global llm
            return llm.chat(m)
        """,
        [(11, "CR202"), (15, "CR202")],
    ),
    "a global declared elsewhere does not hide a function's own local engine": (
        """
        from vllm import LLM

        def init():
            global llm
            llm = None

        def run(m):
            llm = LLM(model="p")
            return llm.chat(m)
        """,
        [(10, "CR202")],
    ),
    "a template source read in a comprehension is the comprehension's own name": (
        """
        import jinja2

        def render(tok, sources):
            source = tok.chat_template
            plain = [jinja2.Template(source) for source in sources]
            return jinja2.Template(source)
        """,
        [(7, "CR202")],
    ),
}


def _besides_loads(source: str) -> list[tuple[int, str]]:
    return [f for f in rules(source) if f[1] != "CR101"]


@pytest.mark.parametrize(("source", "expected"), [CASES[k] for k in sorted(CASES)], ids=sorted(CASES))
def test_a_name_is_read_in_its_own_scope(source: str, expected: list[tuple[int, str]]) -> None:
    assert _besides_loads(source) == expected


def test_a_round_trip_is_judged_in_the_comprehension_that_rebinds_the_name() -> None:
    """``s = pickle.dumps(x); pickle.loads(s)`` is a round trip; ``pickle.loads(s) for s in blobs`` unpickles
    whatever the blobs hold, and does not make the function's own round trip a finding."""
    source = """
        import pickle

        def f(x, blobs):
            s = pickle.dumps(x)
            copies = [pickle.loads(s) for s in blobs]
            return pickle.loads(s), copies
        """
    assert rules(source) == [(6, "CR503")]


def test_a_nonlocal_store_makes_the_outer_name_unknown() -> None:
    """A nested function that stores into the outer name with ``nonlocal`` may leave anything there."""
    source = """
        import pickle

        def f(x, url):
            s = pickle.dumps(x)

            def refresh():
                nonlocal s
                s = fetch(url)

            refresh()
            return pickle.loads(s)
        """
    assert rules(source) == [(12, "CR503")]


DOUBLES = {
    # A comprehension's or a lambda's ``tok`` is not the function's: the function's tok is still the mock.
    "a comprehension or a lambda reusing a mock's name leaves it a mock": (
        """
        from unittest.mock import MagicMock

        def test_pad(real_tokenizers):
            tok = MagicMock()
            tok.pad_token = "<pad>"
            names = [tok.name_or_path for tok in real_tokenizers]
            key = lambda tok: tok.name_or_path
            return names, key
        """,
        [],
    ),
    "a nested function's parameter of the same name is its own": (
        """
        from unittest.mock import MagicMock

        def test_pad(real):
            tok = MagicMock()
            tok.pad_token = "<pad>"

            def check(tok):
                return tok.pad_token

            return check(real)
        """,
        [],
    ),
    # the twins that stay flagged: the function's own name rebound, or stored into from a nested function
    "a loop variable of the function's own, or a nonlocal store, makes the name real": (
        """
        from unittest.mock import MagicMock

        def test_loop(real_tokenizers):
            tok = MagicMock()
            for tok in real_tokenizers:
                tok.pad_token = "<pad>"

        def test_nonlocal(load):
            tok = MagicMock()

            def swap():
                nonlocal tok
                tok = load()

            swap()
            tok.pad_token = "<pad>"
        """,
        [(7, "CR302"), (17, "CR302")],
    ),
    # a closure reads the enclosing function's binding: a mock there is a mock in the nested function too
    "a closure over a mock writes on the mock": (
        """
        from unittest.mock import MagicMock, patch

        def test_closure():
            tok = MagicMock()

            def inner():
                tok.pad_token = "<pad>"

            inner()

        def test_class_in_function():
            tok = MagicMock()

            class Fake:
                def __init__(self):
                    tok.eos_token = "</s>"

            return Fake()

        def test_patched():
            with patch("lab.tok") as tok:
                def inner():
                    tok.pad_token = "<pad>"

                inner()
        """,
        [],
    ),
    "a closure over a parameter, a real load or a nonlocal store writes on a real object": (
        """
        from unittest.mock import MagicMock

        def test_param(tok):
            def inner():
                tok.pad_token = "<pad>"

            inner()

        def test_real(load):
            tok = load()

            def inner():
                tok.pad_token = "<pad>"

            inner()

        def test_swapped(load):
            tok = MagicMock()

            def swap():
                nonlocal tok
                tok = load()

            def inner():
                tok.pad_token = "<pad>"

            swap()
            inner()
        """,
        [(6, "CR302"), (14, "CR302"), (26, "CR302")],
    ),
    "an attribute stored from a nested function is the object's": (
        """
        from unittest.mock import MagicMock

        class T:
            def test_x(self, load):
                self.tok = MagicMock()

                def real():
                    self.tok = load()

                real()
                self.tok.pad_token = "<pad>"
        """,
        [(12, "CR302")],
    ),
}


@pytest.mark.parametrize(("source", "expected"), [DOUBLES[k] for k in sorted(DOUBLES)], ids=sorted(DOUBLES))
def test_a_double_is_judged_by_the_bindings_of_its_own_scope(source: str, expected: list[tuple[int, str]]) -> None:
    assert _besides_loads(source) == expected

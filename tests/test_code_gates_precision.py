"""False-alarm classes found on public training code stay silent, and their true-positive twins stay flagged."""

from __future__ import annotations

import textwrap

import pytest

from cleanroom.code_gates import check_source


def rules(source: str) -> list[tuple[int, str]]:
    """(line, rule) for each finding in *source* (dedented)."""
    code = textwrap.dedent(source).encode()
    return [(v.line, v.rule) for v in check_source(code, "snippet.py").violations]


# Each pair: a snippet that only looks like the concern (silent), and its twin where the concern is real.
QUIET_AND_LOUD = {
    "from_pretrained patched and restored": (
        """
        from transformers import AutoTokenizer

        def redirect(existing):
            saved = AutoTokenizer.from_pretrained
            try:
                AutoTokenizer.from_pretrained = lambda *a, **k: existing  # cleanroom: allow[CR101] reuse
                return build()
            finally:
                AutoTokenizer.from_pretrained = saved
        """,
        """
        from transformers import AutoTokenizer

        def redirect(path):
            saved = AutoTokenizer.from_pretrained
            return saved(path)
        """,
    ),
    "apply_chat_template on a mock set up or asserted": (
        """
        from unittest.mock import MagicMock

        def test_render():
            tok = MagicMock()
            tok.apply_chat_template.return_value = "x"
            tok.apply_chat_template.side_effect = None
            render(tok)
            tok.apply_chat_template.assert_called_once()
            kwargs = tok.apply_chat_template.call_args.kwargs
        """,
        """
        def test_render(tok):
            fmt = tok.apply_chat_template
            return fmt([])
        """,
    ),
    "a method handed to inspect": (
        """
        import inspect
        from transformers import AutoModel

        SOURCE = inspect.getsource(Tokenizer.apply_chat_template)
        PARAMS = inspect.signature(AutoModel.from_pretrained).parameters
        """,
        """
        from transformers import AutoModel

        load = AutoModel.from_pretrained
        print(load("p"))
        """,
    ),
    "keywords to a test double's constructor": (
        """
        from types import SimpleNamespace
        from unittest import mock

        class _FakeTokenizer:
            def __init__(self, chat_template=None):
                self.chat_template = chat_template

        tok = SimpleNamespace(chat_template="{{ x }}", pad_token="<pad>")
        cfg = mock.MagicMock(quantization_config={"bits": 4}, load_in_4bit=True)
        fake = _FakeTokenizer(chat_template="{{ y }}")

        def _make_config(quantization_config=None):
            if quantization_config is None:
                return mock.Mock()
            return SimpleNamespace(quantization_config=quantization_config)

        cfg = _make_config(quantization_config={"quant_method": "fp8"})
        """,
        """
        from transformers import AutoModelForCausalLM

        class Tokenizer:
            def __init__(self, chat_template=None):
                self.chat_template = chat_template

        tok = Tokenizer(chat_template="{{ y }}")
        m = AutoModelForCausalLM.from_pretrained("p", load_in_4bit=True)  # cleanroom: allow[CR101] test

        def _make_config(quantization_config=None):
            if quantization_config is None:
                return SimpleNamespace()
            return load(quantization_config=quantization_config)

        cfg = _make_config(quantization_config={"quant_method": "fp8"})
        """,
    ),
    "attributes written on a name bound to a test double": (
        """
        from unittest.mock import Mock, patch

        class TestStream:
            def setUp(self):
                self.tokenizer = Mock()
                self.tokenizer.pad_token_id = 0
                self.tokenizer.eos_token = "</s>"

        def test_bare_trainer():
            trainer = Trainer.__new__(Trainer)
            trainer.pad_token_id = 0

        def test_proc(mocker):
            processor = mocker.MagicMock()
            processor.tokenizer.pad_token_id = 0
            processor.chat_template = None
            with patch("m.load") as loaded:
                loaded.eos_token_id = 2
        """,
        """
        from unittest.mock import Mock

        def test_a():
            tokenizer = Mock()

        def test_b(tokenizer):
            tokenizer.pad_token_id = 0

        def test_c(real_tokenizers):
            tok = Mock()
            for tok in real_tokenizers:
                tok.eos_token = "</s>"

        def test_d():
            trainer = Trainer.__new__(Trainer)
            trainer.tok = load_tokenizer()
            trainer.tok.pad_token = "<pad>"
        """,
    ),
    "keywords to a predicate or a sub-test label": (
        """
        import unittest

        def check(tok, t):
            if is_chat_template_stop_token_trained(tok, chat_template=t):
                return can_load_during_training(load_in_4bit=True)
            return can_keep_resident(load_in_4bit=kw["load_in_4bit"], quantization_config=args.q)

        class TestNames(unittest.TestCase):
            def test_names(self):
                with self.subTest(load_in_4bit=True, quantization_config=None):
                    pass
        """,
        """
        def check(tok, t):
            set_chat_template(tok, chat_template=t)
            return load_during_training(load_in_4bit=True)
        """,
    ),
}


@pytest.mark.parametrize("case", sorted(QUIET_AND_LOUD))
def test_false_alarm_class_is_silent(case: str) -> None:
    quiet, _ = QUIET_AND_LOUD[case]
    assert rules(quiet) == []


@pytest.mark.parametrize("case", sorted(QUIET_AND_LOUD))
def test_true_positive_twin_still_flagged(case: str) -> None:
    _, loud = QUIET_AND_LOUD[case]
    assert rules(loud) != []


def test_twins_flag_what_they_should() -> None:
    """The loud twins, rule by rule: the exemptions reach no further than their class."""
    _, patched = QUIET_AND_LOUD["from_pretrained patched and restored"]
    assert rules(patched) == [(5, "CR101")]  # an alias that is called loads
    _, doubles = QUIET_AND_LOUD["attributes written on a name bound to a test double"]
    # a Mock in another function, a parameter, a loop variable rebinding a Mock's name: all real
    # and a real tokenizer hung on a hand-built instance
    assert sorted(rules(doubles)) == [(8, "CR302"), (13, "CR302"), (18, "CR302")]
    _, ctor = QUIET_AND_LOUD["keywords to a test double's constructor"]
    # a local class, a load, and a "factory" that returns a real load on one branch (line 14: the call
    # inside it; line 16: the call of it)
    assert sorted(rules(ctor)) == [(8, "CR201"), (9, "CR401"), (14, "CR401"), (16, "CR401")]
    _, predicate = QUIET_AND_LOUD["keywords to a predicate or a sub-test label"]
    assert sorted(rules(predicate)) == [(3, "CR201"), (4, "CR401")]


def test_safety_rules_still_apply_to_doubles_and_predicates() -> None:
    """trust_remote_code=True given to a fake args object or a predicate still runs remote code somewhere."""
    found = rules(
        """
        from types import SimpleNamespace

        args = SimpleNamespace(trust_remote_code=True)
        ok = is_vision_model("p", trust_remote_code=True)
        """
    )
    assert sorted(found) == [(4, "CR501"), (5, "CR501")]


# The reviewer's fail-open holes (each was silent after the false-alarm fixes): real code that must stay
# flagged, with the (line, rule) each must give. The pre-session gates flagged every one of them.
MUST_STAY_FLAGGED = {
    "a real tokenizer unpacked onto a SimpleNamespace": (
        """
        from types import SimpleNamespace
        from cleanroom import CleanModelLoader

        def setup(path):
            run = SimpleNamespace(loader=CleanModelLoader(path), model=None, tok=None)
            run.model, run.tok = run.loader.load()
            run.tok.chat_template = CHATML
            run.tok.pad_token = run.tok.eos_token
        """,
        [(8, "CR201"), (9, "CR302")],
    ),
    "a real tokenizer given to a SimpleNamespace's constructor": (
        """
        from types import SimpleNamespace
        from cleanroom import CleanModelLoader

        def setup2(path):
            state = SimpleNamespace(tok=CleanModelLoader(path).load_tokenizer()); state.tok.chat_template = CHATML
        """,
        [(6, "CR201")],
    ),
    "a double's name rebound by unpacking a real load": (
        """
        from types import SimpleNamespace
        from cleanroom import CleanModelLoader

        def setup3(path):
            tok = SimpleNamespace(eos_token=None); model, tok = CleanModelLoader(path).load(); tok.chat_template = CHATML
        """,
        [(6, "CR201")],
    ),
    "a double's name rebound by a for loop's tuple or a starred target": (
        """
        from unittest.mock import MagicMock

        def train(tokenizers, paths):
            tok = MagicMock()
            for tok, p in zip(tokenizers, paths):
                tok.eos_token = "<|im_end|>"
            first, *rest = tokenizers
            rest = MagicMock()
            rest[0].pad_token = "<pad>"
        """,
        [(7, "CR302"), (10, "CR302")],
    ),
    "a real tokenizer given to a MagicMock's constructor": (
        """
        from unittest.mock import MagicMock
        from transformers import AutoTokenizer

        MagicMock(tokenizer=AutoTokenizer.from_pretrained(p)).tokenizer.chat_template = T

        def train3(path):
            helper = MagicMock(tokenizer=AutoTokenizer.from_pretrained(path))
            helper.tokenizer.chat_template = T
            setattr(helper, "tok", load(path))
            helper.tok.pad_token = "<pad>"
        """,
        [(5, "CR101"), (5, "CR201"), (8, "CR101"), (9, "CR201"), (11, "CR302")],
    ),
    "from_pretrained replaced by a patch": (
        """
        import transformers
        from transformers import AutoModelForCausalLM

        def setup4(path, custom_loader):
            transformers.AutoTokenizer.from_pretrained = custom_loader
            saved = AutoModelForCausalLM.from_pretrained
            AutoModelForCausalLM.from_pretrained = saved
            other = AutoModelForCausalLM.from_pretrained
            transformers.AutoTokenizer.from_pretrained = other

        AutoModelForCausalLM.from_pretrained = lambda *a, **k: None
        """,
        [(6, "CR101"), (9, "CR101"), (10, "CR101"), (12, "CR101")],
    ),
    "an inspect call whose result is called": (
        """
        import inspect
        import transformers

        def setup5(path):
            return inspect.unwrap(transformers.AutoModelForCausalLM.from_pretrained)(path)

        load = inspect.unwrap(transformers.AutoTokenizer.from_pretrained)
        """,
        [(6, "CR101"), (8, "CR101")],
    ),
    "a predicate that loads, or is given a computed value": (
        """
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        def is_ready(path, load_in_4bit=True):
            return AutoModelForCausalLM.from_pretrained(path, load_in_4bit=load_in_4bit)

        m = is_ready("p", load_in_4bit=True)

        def should_load(path, **kw):
            return AutoModelForCausalLM.from_pretrained(path, **kw)

        m2 = should_load("p", load_in_4bit=True, quantization_config=None)
        ok = can_run(quantization_config=make_quantization(bits=4))
        """,
        [(5, "CR101"), (5, "CR401"), (7, "CR401"), (10, "CR101"), (12, "CR401"), (13, "CR401")],
    ),
}


@pytest.mark.parametrize("case", sorted(MUST_STAY_FLAGGED))
def test_reviewer_hole_stays_flagged(case: str) -> None:
    source, expected = MUST_STAY_FLAGGED[case]
    assert sorted(rules(source)) == expected


def test_only_the_put_back_of_the_saved_method_is_silent() -> None:
    """A write of X.from_pretrained is silent only when its value is a name whose every binding in the
    scope is a read of the same method (by any spelling of the class). Saving one class's method and writing
    it onto another installs a patch (line 7), and the save is then used for more than putting back (line 6);
    the put-back itself (line 8) stays silent. A parameter, or a name rebound to something else, is a patch."""
    swapped = """
        import transformers
        from transformers import AutoModel, AutoTokenizer

        def swap():
            saved = AutoTokenizer.from_pretrained
            AutoModel.from_pretrained = saved
            transformers.AutoTokenizer.from_pretrained = saved

        def install(saved):
            AutoTokenizer.from_pretrained = saved

        def rebind(p):
            saved = AutoTokenizer.from_pretrained
            saved = make_loader(p)
            AutoTokenizer.from_pretrained = saved
        """
    assert rules(swapped) == [(6, "CR101"), (7, "CR101"), (11, "CR101"), (16, "CR101")]  # line 14: a dead read, loads nothing


def test_a_redirect_that_delegates_to_the_saved_method() -> None:
    """unsloth's redirect: the saved method is called by the wrapper (a use: line 5), the wrapper installed
    (a patch: line 9); putting the original back (line 12) changes nothing and is silent."""
    found = rules(
        """
        from transformers import AutoTokenizer

        def build(existing, name):
            original = AutoTokenizer.from_pretrained
            def redirect(*a, **k):
                return existing if a[0] == name else original(*a, **k)
            try:
                AutoTokenizer.from_pretrained = redirect
                return make()
            finally:
                AutoTokenizer.from_pretrained = original
        """
    )
    assert found == [(5, "CR101"), (9, "CR101")]


def test_bool_of_a_chat_template_flag_is_a_flag_read() -> None:
    """lm-eval's ``self.fewshot_as_multiturn = bool(self.apply_chat_template)`` reads a setting; ``bool()`` of the
    method's result calls it, and the method handed to a function is a use."""
    quiet = """
        class EvalConfig:
            apply_chat_template: bool = False

            def resolve(self):
                if self.apply_chat_template:
                    self.multiturn = bool(self.apply_chat_template)
        """
    loud = """
        def render(tok, m, run):
            ok = bool(tok.apply_chat_template(m))
            return ok, run(tok.apply_chat_template)
        """
    assert rules(quiet) == []
    assert rules(loud) == [(3, "CR202"), (4, "CR202")]

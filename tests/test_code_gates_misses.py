"""Misses found on public training code are caught (vLLM chat, hand-rendered templates, spread token dicts,
token strings to add_special_tokens), and their look-alikes stay silent."""

from __future__ import annotations

import textwrap

import pytest

from cleanroom.code_gates import check_source
from cleanroom.code_gates.prefilter import needs_ast


def rules(source: str) -> list[tuple[int, str]]:
    """(line, rule) for each finding in *source* (dedented), after checking the prefilter keeps it."""
    code = textwrap.dedent(source)
    found = [(v.line, v.rule) for v in check_source(code.encode(), "snippet.py").violations]
    if found:
        assert needs_ast(compile(code, "snippet.py", "exec"), code)
    return found


# Each case: a snippet where the concern occurs, and the (line, rule) findings it must give besides CR101 for a load.
CAUGHT = {
    "vllm LLM.chat on a local name": (
        """
        from vllm import LLM

        def main(messages):
            llm = LLM(model="p")
            return llm.chat(messages)
        """,
        [(6, "CR202")],
    ),
    "vllm LLM.chat through an import alias and vllm.LLM": (
        """
        import vllm
        from vllm import LLM as Engine

        def a(m):
            llm = Engine(model="p")
            return llm.chat(m)

        def b(m):
            other = vllm.LLM(model="p") if m else None
            return other.chat(m, use_tqdm=False)
        """,
        [(7, "CR202"), (11, "CR202")],
    ),
    "vllm LLM.chat on self.llm bound in __init__": (
        """
        from vllm import LLM

        class Generator:
            def __init__(self, path):
                self.llm = LLM(model=path)

            def run(self, messages):
                return self.llm.chat(messages)
        """,
        [(9, "CR202")],
    ),
    "vllm LLM.chat on a module-level name and on the call itself": (
        """
        from vllm.entrypoints.llm import LLM

        llm = LLM(model="p")

        def run(m):
            return llm.chat(m)

        out = LLM(model="p").chat([])
        """,
        [(7, "CR202"), (9, "CR202")],
    ),
    "jinja2.Template of a tokenizer's chat_template": (
        """
        import jinja2

        def render(tok, messages):
            return jinja2.Template(tok.chat_template).render(messages=messages)
        """,
        [(5, "CR202")],
    ),
    "Environment().from_string of a chat_template": (
        """
        from jinja2 import Environment

        def render(tok, messages):
            return Environment().from_string(tok.chat_template or "").render(messages=messages)
        """,
        [(5, "CR202")],
    ),
    "ImmutableSandboxedEnvironment.from_string of default_chat_template, one hop": (
        """
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def render(tok, messages):
            env = ImmutableSandboxedEnvironment(trim_blocks=True)
            source = tok.default_chat_template
            return env.from_string(source).render(messages=messages)
        """,
        [(7, "CR202")],
    ),
    "special tokens in a dict literal spread into from_pretrained": (
        """
        from transformers import AutoTokenizer

        def load(p):
            kw = {"pad_token": "<pad>", "revision": "main"}
            return AutoTokenizer.from_pretrained(p, **kw)  # cleanroom: allow[CR101] test
        """,
        [(6, "CR302")],  # at the **kw, so a waiver on the call's line covers it
    ),
    "special tokens in dict() spread into a config, also on self": (
        """
        from trl import SFTConfig

        class Run:
            def __init__(self):
                self.token_kw = dict(eos_token="<|im_end|>")

            def config(self):
                return SFTConfig(output_dir="o", **self.token_kw)
        """,
        [(9, "CR302")],
    ),
    "any keyword rule in a dict literal spread into a load": (
        """
        from transformers import AutoModelForCausalLM

        def load(p, q):
            model_kwargs = {"load_in_4bit": True, "torch_dtype": "auto"}
            return AutoModelForCausalLM.from_pretrained(p, **model_kwargs)  # cleanroom: allow[CR101] test
        """,
        [(6, "CR401")],
    ),
    "the tokenizer method _compile_jinja_template of older transformers": (
        """
        def render(tok, messages):
            return tok._compile_jinja_template(tok.chat_template).render(messages=messages)
        """,
        [(3, "CR202")],
    ),
    "vllm LLM bound on cls in a classmethod, used on self": (
        """
        from vllm import LLM

        class Judge:
            @classmethod
            def setup(cls, path):
                cls.engine = LLM(model=path)

            def score(self, messages):
                return self.engine.chat(messages)
        """,
        [(10, "CR202")],
    ),
    "add_special_tokens given a token string": (
        """
        from mylab.hparams import ModelArguments

        args = ModelArguments(model_name_or_path="p", add_special_tokens="<|x|>")
        """,
        [(4, "CR302")],
    ),
    "add_special_tokens given a list of tokens through a name": (
        """
        from mylab.hparams import ModelArguments

        UNUSED_TOKEN = ["<|a|>", "<|b|>"]

        def test_add():
            return ModelArguments(add_special_tokens=UNUSED_TOKEN)
        """,
        [(7, "CR302")],
    ),
}


@pytest.mark.parametrize("case", sorted(CAUGHT))
def test_miss_is_caught(case: str) -> None:
    source, findings = CAUGHT[case]
    assert [f for f in rules(source) if f[1] != "CR101"] == findings


def test_a_dict_call_keeps_its_own_finding_and_adds_only_its_token_keys() -> None:
    """``dict(k=v)`` is checked as a call where it stands; spread into a load it adds only the token keys
    (whose rule depends on the callee), so a finding it already had keeps its message."""
    source = """
        from transformers import AutoModelForCausalLM

        def load(p, q):
            model_kwargs = dict(quantization_config=q, pad_token="<pad>")
            return AutoModelForCausalLM.from_pretrained(p, **model_kwargs)  # cleanroom: allow[CR101] test
        """
    found = check_source(textwrap.dedent(source).encode(), "snippet.py").violations
    assert sorted((v.line, v.rule) for v in found) == [(5, "CR401"), (6, "CR302")]
    by_rule = {v.rule: v.message for v in found}
    assert "(through" not in by_rule["CR401"]
    assert "pad_token= passed to from_pretrained() outside the loader" in by_rule["CR302"]
    assert "(key 'pad_token' at line 5, passed through **model_kwargs)" in by_rule["CR302"]


def test_bool_add_special_tokens_stays_cr301() -> None:
    source = """
        tok('x', add_special_tokens=True)
        tok('y', add_special_tokens=flag)

        def f(tok, add_special_tokens=False):
            flag = add_special_tokens or True
            return tok('z', add_special_tokens=flag)

        args = Args(add_special_tokens=[t.strip() for t in s.split(",")], other=f"{x}")
        """
    assert rules(source) == [(2, "CR301"), (3, "CR301"), (7, "CR301"), (9, "CR302")]


# Look-alikes: the same spelling, no chat template applied and no token added.
QUIET = {
    ".chat on an object not built by vLLM's LLM": """
        from vllm import LLM, AsyncLLMEngine
        from mylab import LLM as MyLLM

        def a(client, m):
            return client.chat(m)

        def b(m):
            bot = MyLLM("p")
            return bot.chat(m)

        def c(m, llm):
            return llm.chat(m)

        async def d(args, m):
            engine = AsyncLLMEngine.from_engine_args(args)
            return await engine.chat(m)

        def e(m):
            llm = LLM(model="p")
            llm.generate(["x"])

        def f(m):
            return llm.chat(m)
        """,
    "a jinja template that is not a chat template": """
        import jinja2
        from jinja2 import Environment

        HELLO = jinja2.Template("hello {{ name }}").render(name="x")
        env = Environment()
        page = env.from_string(open("page.html").read()).render()

        def f(cfg):
            return env.from_string(cfg.prompt_template).render()

        def g(tok):
            template = tok.chat_template
            return Environment().from_string("{{ x }}").render(x=template is None)
        """,
    "from_string of a class that parses names, and chat_template read beside the source": """
        import jinja2
        from enum import Enum
        from packaging.version import Version

        class ChatTemplate(Enum):
            chatml = "chatml"

        def a(cfg):
            return ChatTemplate.from_string(cfg.chat_template)

        def b(model_args):
            return Version.from_string(model_args.chat_template)

        def c(tok):
            return jinja2.Template(HEADER, comment=tok.chat_template)

        def d(tok):
            env = jinja2.Environment()
            return env.from_string(TEMPLATE, globals={"has_tpl": tok.chat_template is None})

        def e(tok):
            return jinja2.Template(PROMPT.format(has=bool(tok.chat_template)))
        """,
    "a dict spread that holds no special token, or into no tokenizer": """
        from transformers import AutoTokenizer

        def load(p):
            kw = {"revision": "main"}
            return AutoTokenizer.from_pretrained(p, **kw)  # cleanroom: allow[CR101] test

        def render(template, messages):
            kw = dict(bos_token="<s>", eos_token="</s>")
            return template.render(messages=messages, **kw)

        def other(p, kw):
            return AutoTokenizer.from_pretrained(p, **kw)  # cleanroom: allow[CR101] test

        def elsewhere():
            kw = {"pad_token": "<pad>"}
            return kw
        """,
}


@pytest.mark.parametrize("case", sorted(QUIET))
def test_look_alike_is_silent(case: str) -> None:
    assert [f for f in rules(QUIET[case]) if f[1] != "CR101"] == []


def test_a_waiver_on_the_call_covers_a_token_spread_into_it() -> None:
    """A spread key is reported at the ``**kw`` of the call, naming the key's line, so the call's waiver holds."""
    source = textwrap.dedent("""
        from transformers import AutoTokenizer

        def load(p):
            kw = {"pad_token": "<pad>"}
            return AutoTokenizer.from_pretrained(p, **kw)  # cleanroom: allow[CR302,CR101] reviewed: pad for batching
        """)
    result = check_source(source.encode(), "snippet.py")
    assert result.violations == () and len(result.used_waivers) == 1 and not result.unused_waivers


@pytest.mark.parametrize("shape", ["receiver", "spread", "source"])
def test_expressions_nested_deeper_than_unparse_can_go_are_reported_not_crashed(shape: str) -> None:
    """Python compiles expressions nested hundreds of levels deeper than ``ast.unparse`` recurses; a message
    that quotes one says ``<expression>``, and a rule walk that still overflows reports the file as unchecked
    (CR901) instead of ending the run."""
    deep = "x if c else " * 400 + "LLM()"
    chain = "self" + ".a" * 1200
    source = {
        "receiver": f"from vllm import LLM\ny = ({deep}).chat(m)\n",
        "spread": f"from transformers import AutoTokenizer\nAutoTokenizer.from_pretrained(p, **{chain})\n",
        "source": f"import jinja2\njinja2.Template(({deep}).chat_template)\n",
    }[shape]
    compile(source, "deep.py", "exec")  # valid Python: the gates must not crash on it
    found = check_source(source.encode(), "deep.py").violations
    assert found, "nothing reported"
    assert all(v.rule != "CR901" or "too deeply" in v.message for v in found)


@pytest.mark.parametrize("binding", ["global", "match", "except"])
def test_a_name_rebound_where_one_hop_cannot_see_is_unknown_not_a_round_trip(binding: str) -> None:
    """``s = pickle.dumps(x)`` and ``pickle.loads(s)`` pass as a round trip only where every binding of ``s`` is
    that dumps; a ``global`` rebinding in another function, a ``case ... as s`` or an ``except ... as s`` may hold
    anything, so the load is CR503."""
    source = {
        "global": """
            import pickle
            s = pickle.dumps(1)

            def refresh(url):
                global s
                s = fetch(url)

            def use():
                return pickle.loads(s)
            """,
        "match": """
            import pickle

            def f(x):
                s = pickle.dumps(1)
                match x:
                    case bytes() as s:
                        pass
                return pickle.loads(s)
            """,
        "except": """
            import pickle

            def g():
                s = pickle.dumps(1)
                try:
                    pass
                except Exception as s:
                    pass
                return pickle.loads(s)
            """,
    }[binding]
    assert [rule for _, rule in rules(source)] == ["CR503"]

"""Misses found on public training code the gates had not seen (verl, EasyR1, OpenRLHF) are caught,
and their look-alikes stay silent."""

from __future__ import annotations

import pytest

from .test_code_gates_misses import rules

CAUGHT = {
    # verl/workers/engine/fsdp/transformer_impl.py: the FSDP engine's model load was invisible
    "a class chosen at run time, with a switch for remote code": (
        """
        def build(cfg, path, trust):
            auto_class = get_hf_auto_model_class(hf_config=cfg)
            return auto_class.from_pretrained(path, config=cfg, trust_remote_code=trust)
        """,
        [(4, "CR101"), (4, "CR501")],
    ),
    # OpenRLHF openrlhf/models/model.py:110, verl/utils/model.py:444, unsloth diffusion.py:244
    "model_cls, cls_class and self.auto_model_class": (
        """
        def a(p):
            model_cls = pick(p)
            return model_cls.from_pretrained(p)

        def b(p, base):
            cls_class = _get_reward_model(base)
            return cls_class.from_pretrained(p, torch_dtype="auto")

        class Merger:
            def merge(self, p):
                return self.auto_model_class.from_pretrained(p)
        """,
        [(4, "CR101"), (8, "CR101"), (12, "CR101")],
    ),
    # unsloth/models/loader.py:500: a pass-through of the switch to a class the import table cannot name
    "a non-literal trust_remote_code to super().from_pretrained": (
        """
        class Loader(Base):
            @classmethod
            def from_pretrained(cls, p, trust_remote_code=False):
                return super().from_pretrained(p, trust_remote_code=trust_remote_code)
        """,
        [(5, "CR501")],
    ),
    # verl/experimental/fully_async_policy/fully_async_trainer.py:219: Ray's vendored cloudpickle
    "a pickle module vendored under another package": (
        """
        import ray
        from ray import cloudpickle

        def a(x, blob):
            rows = [ray.cloudpickle.loads(b) for b in x]
            return rows, cloudpickle.load(blob)
        """,
        [(6, "CR503"), (7, "CR503")],
    ),
    "a pickle round trip's look-alikes: a name bound to dumps and to a read, a parameter, a global": (
        """
        import pickle

        def a(x, f):
            s = pickle.dumps(x)
            if f:
                s = f.read()
            return pickle.loads(s)

        def b(s):
            return pickle.loads(s)

        BLOB = pickle.dumps(1)
        BLOB = open("x").read()

        def c():
            return pickle.loads(BLOB)
        """,
        [(8, "CR503"), (11, "CR503"), (17, "CR503")],
    ),
}

SILENT = {
    # verl tests/test_protocol_on_cpu.py:1232: the round trip across two statements
    "a pickle round trip through a name bound only to dumps": """
        import pickle

        def test_round_trip(data):
            try:
                serialized = pickle.dumps(data)
            except Exception as e:
                raise AssertionError(e)
            return pickle.loads(serialized)
        """,
    "a vendored cloudpickle round trip and a module merely named like one": """
        import ray
        import mylab.picklers

        def a(obj):
            return ray.cloudpickle.loads(ray.cloudpickle.dumps(obj)), mylab.picklers.load(obj)
        """,
    "an unknown receiver is not a load by name alone": """
        def a(p, registry, loader):
            registry[p].from_pretrained(p)
            loader.from_pretrained(p, trust_remote_code=False)
            return super().from_pretrained(p)
        """,
    "cls in a classmethod is the class's own constructor": """
        class CharTokenizer:
            @classmethod
            def from_pretrained(cls, d, **kw):
                return cls.from_config(load(d))
        """,
    "PeftModel onto a loaded model stays out of CR101": """
        from peft import PeftModel

        def a(model, adapter):
            return PeftModel.from_pretrained(model, adapter, is_trainable=True)
        """,
}


@pytest.mark.parametrize("name", sorted(CAUGHT))
def test_public_miss_is_caught(name: str) -> None:
    source, expected = CAUGHT[name]
    assert rules(source) == expected


@pytest.mark.parametrize("name", sorted(SILENT))
def test_look_alike_stays_silent(name: str) -> None:
    assert rules(SILENT[name]) == []

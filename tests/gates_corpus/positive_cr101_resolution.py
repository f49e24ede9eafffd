"""CR101 positives reached only by name resolution: a class picked by a conditional, fetched by a
computed getattr, with a suffix no list names, behind nested attributes, and
vLLM's engines (model loads by another name)."""
import transformers
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
from vllm import LLM, AsyncLLMEngine, EngineArgs

from mylab.diffusion import LladaModelForBlockDiffusion


def pick(path, reward: bool, name: str):
    cls = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    a = cls.from_pretrained(path)  # expect: CR101
    b = (AutoModelForCausalLM if reward else None).from_pretrained(path)  # expect: CR101
    c = getattr(transformers, name).from_pretrained(path)  # expect: CR101
    arch = getattr(transformers, name)
    d = arch.from_pretrained(path)  # expect: CR101
    e = LladaModelForBlockDiffusion.from_pretrained(path)  # expect: CR101
    return a, b, c, d, e


class Wrapper:
    def __init__(self, path):
        self.model_class = AutoModelForCausalLM
        self.model = self.model_class.parent_class.from_pretrained(path)  # expect: CR101


def serve(path):
    llm = LLM(model=path)  # expect: CR101
    engine = AsyncLLMEngine.from_engine_args(EngineArgs(model=path))  # expect: CR101
    return llm, engine

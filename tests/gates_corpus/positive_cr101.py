"""CR101 positives: model/tokenizer loading outside the loader, plain, aliased, by attribute."""
import builtins
import functools
import importlib
from functools import partial

import transformers
import transformers as tf
from transformers import AutoModelForCausalLM
from transformers import AutoModelForCausalLM as M
from transformers import AutoTokenizer as Tok
from transformers.models.qwen2 import Qwen2ForCausalLM
from peft import AutoPeftModelForCausalLM

from mylab.hf import AutoModelForCausalLM as LabModel  # a lab's re-export is the same class
from mylab.hf import Qwen2TokenizerFast

from .hf import LlamaForCausalLM as Local


def main(path):
    a = AutoModelForCausalLM.from_pretrained(path)  # expect: CR101
    b = M.from_pretrained(path)  # expect: CR101
    c = tf.AutoTokenizer.from_pretrained(path)  # expect: CR101
    d = transformers.AutoModel.from_pretrained(path)  # expect: CR101
    e = Tok.from_pretrained(path)  # expect: CR101
    f = Qwen2ForCausalLM.from_pretrained(path)  # expect: CR101
    cls = tf.AutoModelForCausalLM
    g = cls.from_pretrained(path)  # expect: CR101
    h = getattr(transformers, "AutoModelForCausalLM").from_pretrained(path)  # expect: CR101
    hf = importlib.import_module("transformers")
    i = hf.PreTrainedTokenizerFast.from_pretrained(path)  # expect: CR101
    j = AutoPeftModelForCausalLM.from_pretrained(path)  # expect: CR101
    from transformers import LlamaTokenizerFast as Fast

    k = Fast.from_pretrained(path)  # expect: CR101
    return a, b, c, d, e, f, g, h, i, j, k


def aliases(path):
    load = AutoModelForCausalLM.from_pretrained  # expect: CR101
    model = load(path)
    tok = functools.partial(Tok.from_pretrained, path)  # expect: CR101
    Model, Tokenizer = AutoModelForCausalLM, Tok
    a = Model.from_pretrained(path)  # expect: CR101
    b = Tokenizer.from_pretrained(path)  # expect: CR101
    K: type = AutoModelForCausalLM
    c = K.from_pretrained(path)  # expect: CR101
    d = LabModel.from_pretrained(path)  # expect: CR101
    e = Qwen2TokenizerFast.from_pretrained(path)  # expect: CR101
    f = Local.from_pretrained(path)  # expect: CR101
    hooks = {"tokenizer": partial(M.from_pretrained)}  # expect: CR101
    g = getattr(Tok, "from_pretrained")  # expect: CR101
    h = builtins.getattr(M, "from_pretrained")(path)  # expect: CR101
    return model, tok, a, b, c, d, e, f, hooks, g, h


class Runner:
    model_class = AutoModelForCausalLM

    def __init__(self, path):
        self.tokenizer_class = Tok
        self.model = self.model_class.from_pretrained(path)  # expect: CR101
        self.tokenizer = self.tokenizer_class.from_pretrained(path)  # expect: CR101
        self.again = Runner.model_class.from_pretrained(  # expect: CR101
            path,
            revision="main",
        )

"""CR101 positives: model/tokenizer loading outside the loader, plain, aliased, by attribute."""
import importlib

import transformers
import transformers as tf
from transformers import AutoModelForCausalLM
from transformers import AutoModelForCausalLM as M
from transformers import AutoTokenizer as Tok
from transformers.models.qwen2 import Qwen2ForCausalLM
from peft import AutoPeftModelForCausalLM


def main(path):
    a = AutoModelForCausalLM.from_pretrained(path)  # expect: CR101
    b = M.from_pretrained(path)  # expect: CR101
    c = tf.AutoTokenizer.from_pretrained(path)  # expect: CR101
    d = transformers.AutoConfig.from_pretrained(path)  # expect: CR101
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

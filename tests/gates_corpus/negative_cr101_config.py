"""CR101 negatives: reading a config loads no model and no tokenizer (that is CR103, off by default)."""
import transformers
from transformers import AutoConfig, GenerationConfig


def read(path):
    config = AutoConfig.from_pretrained(path)
    gen = GenerationConfig.from_pretrained(path)
    llama = transformers.LlamaConfig.from_pretrained(path)
    return config.hidden_size, gen.eos_token_id, llama

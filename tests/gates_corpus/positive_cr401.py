"""CR401 positives: BitsAndBytesConfig built outside the loader; load_in_4bit/8bit passed."""
import transformers
from transformers import BitsAndBytesConfig
from transformers import BitsAndBytesConfig as BnB

q1 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")  # expect: CR401
q2 = BnB(load_in_8bit=True)  # expect: CR401
q3 = transformers.BitsAndBytesConfig(load_in_4bit=True)  # expect: CR401


def load(loader_fn, path):
    return loader_fn(path, load_in_4bit=True)  # expect: CR401


def more(model_args, path, build):
    from trl import get_quantization_config

    quant = get_quantization_config(model_args)  # expect: CR401
    kwargs = dict(quantization_config=quant)  # expect: CR401
    return build(path, **kwargs)


def other_schemes():
    from transformers import GPTQConfig, Mxfp4Config

    return Mxfp4Config(dequantize=True), GPTQConfig(bits=4)  # expect: CR401

"""CR401 negatives: BitsAndBytesConfig and load_in_4bit in text only, read, or switched off.

quant = BitsAndBytesConfig(load_in_4bit=True)   # in a docstring
"""
from cleanroom import CleanModelLoader

# quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
HINT = "BitsAndBytesConfig(load_in_4bit=True) belongs in the loader"


def load(path, settings):
    """Ask the loader for 4-bit weights instead of building ``BitsAndBytesConfig(load_in_8bit=True)``."""
    four_bit = settings.load_in_4bit  # reading a flag builds nothing
    model = CleanModelLoader(path, quantization="nf4" if four_bit else "none").load()
    return model, dict(load_in_4bit=False), HINT

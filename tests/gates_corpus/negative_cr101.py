"""CR101 negatives: the word from_pretrained in text, and from_pretrained on things that load no model."""
from peft import PeftModel

from mylab.data import Dataset
from mylab.models import AdapterBank, Trainer

# model = AutoModelForCausalLM.from_pretrained(path)   <- a comment, not code
HELP = "call AutoModelForCausalLM.from_pretrained(path) to load"
SNIPPET = """
tok = AutoTokenizer.from_pretrained("Qwen/Qwen2.5-32B")
"""


def adapters(model, path):
    """Example: ``AutoTokenizer.from_pretrained(path)`` is what the loader does for you."""
    data = Dataset.from_pretrained(path)  # the user's own class, not a model loader
    bank = AdapterBank.from_pretrained(path)
    restore = Trainer.from_pretrained  # an uncalled read on a class that loads no model
    attach = PeftModel.from_pretrained  # an adapter onto a model the loader loaded
    return attach(model, path), data, bank, restore


def pipeline(x):
    return x


pipeline("not transformers.pipeline")

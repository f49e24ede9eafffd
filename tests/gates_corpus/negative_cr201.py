"""CR201 negatives: reading a template to check it, and the text in comments, strings and docstrings.

tokenizer.chat_template = None   # in a docstring
"""


def check(tokenizer):
    # tokenizer.chat_template = None
    note = "tokenizer.chat_template = None"
    other = 'setattr(tok, "chat_template", None)'
    if tokenizer.chat_template is not None:
        raise ValueError(f"chat_template = None expected, got {tokenizer.chat_template!r}")
    has = getattr(tokenizer, "chat_template", None)
    return note, other, has


class Trainer:
    """A trainer's own field named chat_template is not a tokenizer's template."""

    def __init__(self):
        self.chat_template = None

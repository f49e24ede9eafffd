"""CR202 positives: apply_chat_template called directly, through getattr, or bound to a name."""


def render(tokenizer, messages):
    a = tokenizer.apply_chat_template(messages, tokenize=False)  # expect: CR202
    b = getattr(tokenizer, "apply_chat_template")(messages)  # expect: CR202
    fmt = tokenizer.apply_chat_template  # expect: CR202
    c = object.__getattribute__(tokenizer, "apply_chat_template")(messages)  # expect: CR202
    return a, b, c, fmt(messages)

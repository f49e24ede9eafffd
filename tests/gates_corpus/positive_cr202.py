"""CR202 positives: apply_chat_template called directly, through getattr, or bound to a name."""


def render(tokenizer, messages):
    a = tokenizer.apply_chat_template(messages, tokenize=False)  # expect: CR202
    b = getattr(tokenizer, "apply_chat_template")(messages)  # expect: CR202
    fmt = tokenizer.apply_chat_template  # expect: CR202
    c = object.__getattribute__(tokenizer, "apply_chat_template")(messages)  # expect: CR202
    return a, b, c, fmt(messages)


def helpers(dataset, tokenizer, example):
    from trl import maybe_apply_chat_template
    from trl.data_utils import apply_chat_template

    a = maybe_apply_chat_template(example, tokenizer)  # expect: CR202
    b = apply_chat_template(example, tokenizer)  # expect: CR202
    c = dataset.map(maybe_apply_chat_template, fn_kwargs={"tokenizer": tokenizer})  # expect: CR202
    d = tokenizer.apply_chat_template(getattr(tokenizer, "apply_chat_template")(a))  # expect: CR202
    return a, b, c, d

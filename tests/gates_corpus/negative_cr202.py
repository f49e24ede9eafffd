"""CR202 negatives: 'apply_chat_template' appears in text only."""

# prompt = tokenizer.apply_chat_template(messages)
WHY = "never call tokenizer.apply_chat_template(messages) on a base model"


def render(prompt: str) -> str:
    """Like ``apply_chat_template`` but for base models: plain completion text."""
    return f"Question: {prompt}\nAnswer:"


def flags(args, config):
    """A boolean setting named apply_chat_template is read or asserted, never called."""
    if args.data.apply_chat_template:
        pass
    assert not config.apply_chat_template
    use = getattr(args, "apply_chat_template", False)
    wanted = args.apply_chat_template
    args.apply_chat_template = True
    return use, wanted

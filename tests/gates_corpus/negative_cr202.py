"""CR202 negatives: 'apply_chat_template' appears in text only."""

# prompt = tokenizer.apply_chat_template(messages)
WHY = "never call tokenizer.apply_chat_template(messages) on a base model"


def render(prompt: str) -> str:
    """Like ``apply_chat_template`` but for base models: plain completion text."""
    return f"Question: {prompt}\nAnswer:"

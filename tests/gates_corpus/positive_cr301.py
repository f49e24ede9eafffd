"""CR301 positives: add_special_tokens= passed to a tokenizer, spaced, through **kwargs literals."""


def encode(tokenizer, tok, text):
    a = tokenizer(text, add_special_tokens=False)  # expect: CR301
    b = tok.encode(text, add_special_tokens = False)  # expect: CR301
    c = tok(
        text,
        add_special_tokens=True,  # expect: CR301
    )
    d = tok(text, **{"add_special_tokens": False})  # expect: CR301
    e = tok(text, **dict(add_special_tokens=False))  # expect: CR301
    return a, b, c, d, e

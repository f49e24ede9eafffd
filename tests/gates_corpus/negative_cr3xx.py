"""CR301/CR302 negatives: reading special tokens is fine; the text in comments and strings never counts."""


def ids(tokenizer, text):
    # tokenizer(text, add_special_tokens=False)
    doc = "pass add_special_tokens=False to skip BOS"
    eos = tokenizer.eos_token_id
    stop = [tokenizer.eos_token, tokenizer.pad_token]
    return tokenizer(text), eos, stop, doc


def generate(model, inputs, tokenizer):
    return model.generate(**inputs, pad_token_id=tokenizer.eos_token_id)


def format_example(example, eos_token):
    return example["text"] + eos_token


def pack(examples, tokenizer, GenerationConfig):
    texts = [format_example(e, eos_token=tokenizer.eos_token) for e in examples]  # a value, not a rewrite
    stop = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return texts, stop, getattr(tokenizer, "eos_token")


class Collator:
    """Reads copied into the caller's own state or a config: nothing on a tokenizer changes."""

    def __init__(self, tokenizer, model, gen_config):
        self.pad_token_id = tokenizer.pad_token_id
        self.eos_token = tokenizer.eos_token
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        gen_config.pad_token_id = tokenizer.pad_token_id

"""CR302 positives: bos/eos/pad tokens and ids written, add_special_tokens() on a tokenizer."""


def patch(tokenizer, model, cfg):
    tokenizer.eos_token = "<|im_end|>"  # expect: CR302
    tokenizer.pad_token = tokenizer.eos_token  # expect: CR302
    tokenizer.bos_token = None  # expect: CR302
    model.generation_config.eos_token_id = 151645  # expect: CR302
    model.config.pad_token_id = 0  # expect: CR302
    setattr(tokenizer, "eos_token", "<|im_end|>")  # expect: CR302
    cfg["eos_token"] = "<|im_end|>"  # expect: CR302
    tokenizer.add_special_tokens({"pad_token": "<pad>"})  # expect: CR302

"""CR302 positives: bos/eos/pad tokens and ids written, add_special_tokens() on a tokenizer,
token keywords that rewrite the tokenizer (TRL's SFTConfig/DPOConfig, a tokenizer class)."""
from transformers import PreTrainedTokenizerFast
from trl import DPOConfig, SFTConfig


def patch(tokenizer, model, cfg):
    tokenizer.eos_token = "<|im_end|>"  # expect: CR302
    tokenizer.pad_token = tokenizer.eos_token  # expect: CR302
    tokenizer.bos_token = None  # expect: CR302
    model.generation_config.eos_token_id = 151645  # expect: CR302
    model.config.pad_token_id = 0  # expect: CR302
    setattr(tokenizer, "eos_token", "<|im_end|>")  # expect: CR302
    cfg["eos_token"] = "<|im_end|>"  # expect: CR302
    tokenizer.add_special_tokens({"pad_token": "<pad>"})  # expect: CR302
    object.__setattr__(tokenizer, "eos_token", "<|im_end|>")  # expect: CR302
    tokenizer.__setattr__("pad_token", "<pad>")  # expect: CR302


def configure(path):
    sft = SFTConfig(output_dir="out", eos_token="<|im_end|>")  # expect: CR302
    dpo = DPOConfig(output_dir="out", pad_token="<pad>")  # expect: CR302
    tok = PreTrainedTokenizerFast(tokenizer_file=path, bos_token="<s>")  # expect: CR302
    return sft, dpo, tok

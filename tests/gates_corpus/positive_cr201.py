"""CR201 positives: chat_template assignment, deletion, read-modify, setattr/delattr, kwargs, dict keys."""
import builtins
from builtins import delattr as drop

from transformers import PreTrainedTokenizerFast


def strip(tokenizer, tok, config, cfg, T):
    tokenizer.chat_template = None  # expect: CR201
    tok.chat_template=None  # expect: CR201
    tok.inner.default_chat_template = ""  # expect: CR201
    setattr(tok, "chat_template", None)  # expect: CR201
    delattr(tokenizer, "chat_template")  # expect: CR201
    del tok.chat_template  # expect: CR201
    tok.chat_template += "{{ eos_token }}"  # expect: CR201
    tok.chat_template["default"] = T  # expect: CR201
    getattr(tok, "chat_template")["tool_use"] = T  # expect: CR201
    tok.chat_template.update({"rag": T})  # expect: CR201
    config["chat_template"] = T  # expect: CR201
    config.pop("chat_template", None)  # expect: CR201
    cfg.update({"chat_template": T})  # expect: CR201
    return PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=T)  # expect: CR201


def reflective(tok, T):
    object.__setattr__(tok, "chat_template", T)  # expect: CR201
    tok.__setattr__("chat_template", T)  # expect: CR201
    type(tok).__delattr__(tok, "default_chat_template")  # expect: CR201
    builtins.setattr(tok, "chat_template", None)  # expect: CR201
    drop(tok, "chat_template")  # expect: CR201


def helpers(model, tokenizer, source):
    from trl import clone_chat_template, setup_chat_format

    model, tokenizer = setup_chat_format(model, tokenizer)  # expect: CR201
    return clone_chat_template(model, tokenizer, source)  # expect: CR201

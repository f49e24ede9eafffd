"""The gate rules: an id, a short name, what it forbids and the fix every message names.

Rules in the 1xx–4xx range are *migration* rules: the thing they flag belongs in the loader
(loading, chat templates, special tokens, quantization), so they do not apply inside the modules
listed as ``loader_modules``. Rules 5xx (unsafe loading) and 9xx (syntax, waivers) apply everywhere:
the loader itself must waive an unsafe call explicitly, with a reason a reviewer can read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One gate rule. ``fix`` ends every violation message of the rule."""

    id: str
    name: str
    forbids: str
    fix: str
    loader_exempt: bool
    default: bool = True  # off-by-default rules run only when named in ``select``


_LOADER = "or list this module in [tool.cleanroom.gates] loader_modules"

RULES: tuple[Rule, ...] = (
    Rule(
        "CR101",
        "load-outside-loader",
        "from_pretrained() on a model, tokenizer or Auto class outside the loader",
        "load with cleanroom.CleanModelLoader(path).load() or .load_tokenizer(), which strips the "
        f"chat template and records provenance ({_LOADER})",
        True,
    ),
    Rule(
        "CR103",
        "config-read",
        "AutoConfig / GenerationConfig / *Config.from_pretrained() outside the loader (off by default)",
        "a config read loads no weights, but the loader's snapshot is the one provenance records; "
        f"read it there ({_LOADER})",
        True,
        default=False,
    ),
    Rule(
        "CR102",
        "pipeline",
        "transformers.pipeline() outside the loader",
        "pipeline() loads a model behind your back and applies chat templates; use "
        f"CleanModelLoader(path).load() and cleanroom.generation.generate() ({_LOADER})",
        True,
    ),
    Rule(
        "CR201",
        "chat-template-write",
        "assigning, deleting or read-modifying chat_template / default_chat_template outside the loader",
        "a base model has no chat template: CleanModelLoader removes it once, guard.recheck() verifies it; "
        f"delete this line ({_LOADER})",
        True,
    ),
    Rule(
        "CR202",
        "apply-chat-template",
        "applying a chat template outside the loader: apply_chat_template, vLLM's LLM.chat, or a "
        "chat_template compiled with jinja by hand",
        "format base-model prompts as plain completions: cleanroom.ifeval.few_shot_prompt() or "
        f"guard.render_example() ({_LOADER})",
        True,
    ),
    Rule(
        "CR301",
        "add-special-tokens-kwarg",
        "passing add_special_tokens= (a bool or unknown value) to a tokenizer call outside the loader",
        "tokenize training data with guard.render_example(), which decides BOS/EOS once for the base model "
        f"({_LOADER})",
        True,
    ),
    Rule(
        "CR302",
        "special-token-write",
        "assigning bos/eos/pad tokens or ids (or passing them to a load or config, a spread dict "
        "included), add_special_tokens() or add_special_tokens='<tok>', outside the loader",
        "the base EOS and pad come from the loader's snapshot (guard.base_eos_id()); changing them "
        f"contaminates training data — remove this line ({_LOADER})",
        True,
    ),
    Rule(
        "CR401",
        "quantization-config",
        "building BitsAndBytesConfig (or another quantization config) or passing load_in_4bit/load_in_8bit/"
        "quantization_config outside the loader",
        f"pass quantization='nf4' or 'int8' to CleanModelLoader so the choice lands in provenance ({_LOADER})",
        True,
    ),
    Rule(
        "CR501",
        "trust-remote-code",
        "trust_remote_code set to anything but False",
        "remote code runs arbitrary Python from the model repository; use an architecture transformers "
        "ships, or waive with '# cleanroom: allow[CR501] <reason>' after reviewing the code",
        False,
    ),
    Rule(
        "CR502",
        "torch-load-unsafe",
        "torch.load without weights_only=True",
        "pass weights_only=True (or load safetensors) so a checkpoint cannot execute code",
        False,
    ),
    Rule(
        "CR503",
        "pickle-load",
        "unpickling (pickle/dill/joblib/cloudpickle load, numpy.load(allow_pickle=True))",
        "a pickle executes code when loaded; store weights as safetensors and data as JSON/JSONL",
        False,
    ),
    Rule(
        "CR901",
        "syntax-error",
        "a Python file that does not compile",
        "fix the syntax error; every file the gates cover must compile",
        False,
    ),
    Rule(
        "CR902",
        "bad-waiver",
        "a '# cleanroom: allow[RULE] reason' waiver with no reason or an unknown rule id",
        "write the reason after the bracket, e.g. '# cleanroom: allow[CR501] reviewed remote code at rev abc123'",
        False,
    ),
)

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
DEFAULT_RULES: frozenset[str] = frozenset(rule.id for rule in RULES if rule.default)

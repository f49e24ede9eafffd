"""The gates' vocabulary: which names load a model, touch a chat template or unpickle.

Data, plus the three judgements made from a qualified name alone (a loading class, a config class,
a listed helper). The checker (:mod:`cleanroom.code_gates.checker`) and the prefilter
(:mod:`cleanroom.code_gates.prefilter`) both read it, so a name added here is both checked and never
skipped.
"""

from __future__ import annotations

import re

# Class names whose from_pretrained loads a model or tokenizer (CR101), from whichever module.
_AUTO_CLASS = re.compile(r"Auto[A-Z]")
_LOAD_SUFFIXES = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "PreTrainedModel")
_LOAD_NAMES = frozenset({"FastLanguageModel", "FastModel"})
# Any name imported from these libraries is a loading class (``getattr(transformers, name)``, a
# model class with a suffix no list has, ``PeftModel``), except the config classes (CR103).
_LOAD_LIBRARIES = frozenset({"transformers", "peft", "unsloth", "trl"})
_FOR_SUFFIX = re.compile(r"For[A-Z][A-Za-z0-9]*$")  # ...ForCausalLM, ...ForBlockDiffusion
_CONFIG_SUFFIXES = ("Config", "Configuration")
# A variable that holds a class chosen at run time (``auto_class = get_hf_auto_model_class(cfg)``,
# ``model_cls``, ``cls_class``): its ``from_pretrained`` loads whatever class it holds (CR101).
RUNTIME_CLASS = re.compile(r"_(?:cls|class)$")
# Well-known helpers that do a forbidden thing inside (qualified name -> rule). A helper matches
# any qualified name with the same top-level package and the same last part
# (``trl.models.utils.setup_chat_format``); ``[tool.cleanroom.gates] helpers`` adds to it.
HELPERS: dict[str, str] = {
    "trl.setup_chat_format": "CR201",
    "trl.clone_chat_template": "CR201",
    "trl.maybe_apply_chat_template": "CR202",
    "trl.apply_chat_template": "CR202",
    "trl.get_quantization_config": "CR401",
    "vllm.LLM": "CR101",
    "vllm.LLMEngine": "CR101",
    "vllm.AsyncLLMEngine": "CR101",
    "vllm.EngineArgs": "CR101",
    "vllm.AsyncEngineArgs": "CR101",
}
# vLLM's offline engine: ``LLM(...).chat(messages)`` applies the model's chat template (CR202). Its
# engines (``LLMEngine``, ``AsyncLLMEngine``) have no chat method; a server's client applies the
# server's template, which is not in the code. Matched like a helper (same package, same last part).
CHAT_ENGINES: dict[str, str] = {"vllm.LLM": "CR202"}
# Jinja compilers: a chat template read as their source is a chat template applied by hand (CR202).
TEMPLATE_COMPILERS: dict[str, str] = {
    "jinja2.Template": "CR202",
    "transformers._compile_jinja_template": "CR202",
}
# ``Environment(...).from_string(source)`` (an environment: rendering.check_template_source), and the tokenizer
# method ``tok._compile_jinja_template(source)`` of older transformers
TEMPLATE_METHODS = frozenset({"from_string", "_compile_jinja_template"})
HELPER_WHY = {
    "CR101": "loads a model",
    "CR201": "writes the chat template (and bos/eos/pad, resizing the embeddings)",
    "CR202": "applies a chat template",
    "CR401": "builds a quantization config",
}
# The callee tag of a finding that a loader module may make: a non-literal trust_remote_code there is
# the loader's own switch, recorded in its provenance.
LOADER_DECIDES = "<loader-decides>"
# A free function of these names applies a chat template wherever it was defined.
CHAT_FUNCTIONS = frozenset({"apply_chat_template", "maybe_apply_chat_template"})
# A receiver named like this holds settings: ``args.apply_chat_template`` is a flag, not the method.
SETTINGS_NAME = re.compile(
    r"(?:^|_)(?:args|arguments|config|cfg|conf|opts?|options|hparams|params|settings|flags)$", re.I
)
PIPELINES = frozenset({"transformers.pipeline", "transformers.pipelines.pipeline"})
CHAT_ATTRS = frozenset({"chat_template", "default_chat_template"})
SPECIAL_ATTRS = frozenset(
    {"bos_token", "eos_token", "pad_token", "bos_token_id", "eos_token_id", "pad_token_id"}
)
TOKEN_KWARGS = frozenset({"bos_token", "eos_token", "pad_token"})  # SFTConfig(eos_token=...) and kin
MUTATORS = frozenset({"update", "pop", "popitem", "clear", "setdefault", "__setitem__", "__delitem__"})
# transformers' quantization configs (``quantization_config=`` values): building one decides the
# weights' numerics outside the loader.
QUANT_CONFIGS = frozenset(
    {"BitsAndBytesConfig", "GPTQConfig", "AwqConfig", "AqlmConfig", "QuantoConfig", "HqqConfig", "EetqConfig"}
    | {"TorchAoConfig", "Mxfp4Config", "FbgemmFp8Config", "FineGrainedFP8Config", "CompressedTensorsConfig"}
    | {"BitNetQuantConfig", "HiggsConfig", "VptqConfig", "SpQRConfig", "QuarkConfig", "AutoRoundConfig"}
)
QUANT_KWARGS = frozenset({"load_in_4bit", "load_in_8bit", "quantization_config"})
TORCH_LOAD = frozenset({"torch.load", "torch.serialization.load"})
PICKLE_LOADS = frozenset(
    f"{mod}.{fn}"
    for mod in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
    for fn in ("load", "loads", "Unpickler")
) | {"joblib.load", "pandas.read_pickle", "torch.serialization.pickle.load"}
NUMPY_LOAD = frozenset({"numpy.load"})


def is_pickle_load(qual: str) -> bool:
    """A listed unpickler, or one vendored under another package (``ray.cloudpickle.loads``,
    ``srsly.cloudpickle.load``): the module's own name and the function decide."""
    return qual in PICKLE_LOADS or ".".join(qual.rsplit(".", 2)[-2:]) in PICKLE_LOADS


def is_loading_class(qual: str) -> bool:
    """True for a class whose ``from_pretrained`` loads a model or tokenizer, judged by its name.

    The name decides, not the library: ``from mylab.hf import AutoModelForCausalLM`` is the same
    class re-exported. ``Dataset``, ``PeftModel`` (adapters onto a loaded model) and the like pass.
    """
    parts = qual.split(".")
    if len(parts) < 2:
        return False  # a module, not a class imported from one
    last = parts[-1]
    if last.endswith(_CONFIG_SUFFIXES):
        return False  # reading a config loads no weights and no tokenizer (CR103)
    if last.startswith("PeftModel"):
        return (
            False  # ``PeftModel.from_pretrained(model, adapter)``: an adapter onto a model the loader loaded
        )
    return (
        parts[0] in _LOAD_LIBRARIES
        or _AUTO_CLASS.match(last) is not None
        or _FOR_SUFFIX.search(last) is not None
        or last.endswith(_LOAD_SUFFIXES)
        or "Tokenizer" in last
        or last in _LOAD_NAMES
    )


def is_config_class(qual: str) -> bool:
    """``AutoConfig``, ``GenerationConfig``, ``transformers.LlamaConfig``: a config read (CR103)."""
    parts = qual.split(".")
    last = parts[-1]
    return (
        len(parts) >= 2
        and last.endswith(_CONFIG_SUFFIXES)
        and (parts[0] in _LOAD_LIBRARIES or _AUTO_CLASS.match(last) is not None or last == "GenerationConfig")
    )


def helper_rule(qual: str | None, helpers: dict[str, str]) -> tuple[str, str] | None:
    """(rule, helper name) when *qual* is a listed helper (same package and same last part)."""
    if qual is None:
        return None
    root, _, rest = qual.partition(".")
    last = qual.rsplit(".", 1)[-1]
    for name, rule in helpers.items():
        h_root, _, h_rest = name.partition(".")
        if name == qual or (root == h_root and rest and h_rest and last == name.rsplit(".", 1)[-1]):
            return rule, name
    return None

"""CleanModelLoader: load a *base* model and tokenizer with every chat-template route disarmed.

Loading and cleaning are one step that must not be separable (a caller that loads without cleaning is the
fault this module exists to prevent): this module offers only the clean load, and every tokenizer and model it
returns has been through :mod:`cleanroom.cleaning` (what "clean" means: the chat template disarmed, control
strings split, no BOS/EOS added silently, EOS and pad the base EOS). Reading the model's JSON files is part of
loading (a broken one must stop the load, not switch a check off). The form the weights are held in
(quantization, dtype, GGUF dense) is :mod:`cleanroom.quantization`; what the directory must hold, checked before
anything is read from it (tokenizer files, weights, no pickle unless allowed), is :mod:`cleanroom.model_dir`.
Besides cleaning:

* a snapshot of the state as loaded and as returned is kept on both objects for :func:`guard.recheck`;
* base-or-instruct: :mod:`cleanroom.probe`; instruct refused unless ``allow_instruct`` with a reason. A
  config.json or generation_config.json that is absent is fine (a tokenizer-only directory: the markers that
  read it do not fire); one that is there but unreadable is an :class:`InputError`, never a marker quietly off.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

from cleanroom import errors, guard
from cleanroom.cleaning import clean_model, clean_tokenizer, refuse_chat_template
from cleanroom.errors import (
    ConfigError,
    ContaminationError,
    DependencyError,
    InputError,
    InstructModelError,
    one_line,
)
from cleanroom.held_log import held_console
from cleanroom.model_dir import (
    check_model_files,
    check_weights,
    file_hashes,
    resolve_model_path,
    weight_files,
)
from cleanroom.model_json import (
    TOKENIZER_JSON,
    check_token_ids,
    check_tokenizer_files,
    check_tokenizer_values,
    read_json_object,
    rejected,
    unreadable,
)
from cleanroom.probe import probe_model
from cleanroom.quantization import (
    QUANTIZATIONS,
    drop_gguf_quantizer,
    gguf_dense_kwargs,
    quantization_config,
    torch_dtype,
)
from cleanroom.sentinels import run_sentinels

# Embedding rows beyond the tokenizer that are still padding, not a different vocabulary: Qwen2.5 pads its
# 151,665 tokens to 151,936 rows (271). A gap larger than this means a tokenizer from a smaller model.
_MAX_EMBEDDING_PADDING = 1024
_DTYPES = (None, "bfloat16", "float32", "float16")
#: The source that decides what a load returns, next to this file: this module and every model-safety and
#: model-use module it runs, directly or through another (tests/test_loader.py derives the set from the imports).
_SOURCES = ("loader.py", "cleaning.py", "quantization.py", "model_json.py", "model_dir.py", "guard.py",
            "control_tokens.py", "clean_state.py", "probe.py", "sentinels.py")


def loader_version() -> str:
    """sha256 over the sha256 of each file of :data:`_SOURCES`, in that order: provenance pins the exact
    loading, cleaning and checking logic that ran (an edit to any of them is a new version)."""
    parts = (hashlib.sha256(Path(__file__).with_name(name).read_bytes()).digest() for name in _SOURCES)
    return hashlib.sha256(b"".join(parts)).hexdigest()


class CleanModelLoader:
    """Load ``(model, tokenizer, provenance)`` for a base model, refusing every contamination route."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        quantization: str | None = None,
        dtype: Any = None,
        device_map: Any = None,
        revision: str | None = None,
        allow_instruct: bool = False,
        allow_instruct_reason: str | None = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        gguf_file: str | None = None,
        probe: bool = True,
    ) -> None:
        if quantization not in QUANTIZATIONS:
            raise ConfigError(f"quantization={quantization!r}: expected one of {QUANTIZATIONS}")
        if isinstance(dtype, str) and dtype not in _DTYPES:
            raise ConfigError(f"dtype={dtype!r}: expected one of {_DTYPES} or a torch.dtype")
        if allow_instruct and not (allow_instruct_reason or "").strip():
            raise ConfigError("allow_instruct=True needs a non-empty allow_instruct_reason (it is recorded in provenance)")
        self.requested_model = str(model_path)
        self.path, gguf_file = resolve_model_path(Path(model_path).expanduser(), gguf_file)
        self.quantization, self.dtype, self.device_map, self.revision = quantization, dtype, device_map, revision
        self.allow_instruct, self.allow_instruct_reason = bool(allow_instruct), allow_instruct_reason
        self.trust_remote_code, self.allow_pickle = bool(trust_remote_code), bool(allow_pickle)
        self.gguf_file, self.probe = gguf_file, bool(probe)

    # ---------------------------------------------------------------- checks on files
    def _model_names(self) -> tuple[str | None, ...]:
        """The model's own names for the name markers: the path and GGUF file given, and GGUF ``general.name``."""
        general = None
        if self.gguf_file is not None:
            # heavy optional: gguf
            from gguf import GGUFReader  # transformers needs gguf to read the file at all

            field = GGUFReader(str(self.path / self.gguf_file)).fields.get("general.name")
            general = str(field.contents()) if field is not None else None
        return (self.requested_model, self.gguf_file, general)

    def _common_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision is not None:
            kwargs["revision"] = self.revision
        if self.gguf_file is not None:
            kwargs["gguf_file"] = self.gguf_file
        return kwargs

    def _load_configs(self) -> tuple[Any, Any]:
        """``(config, generation_config)``, each None when its file is absent (a tokenizer-only directory).

        A file that is there but unreadable (not JSON, not an object, values transformers rejects) raises
        :class:`InputError` naming it: swallowed, the base-or-instruct markers that read it would quietly not
        run. A GGUF's config comes from the file's metadata, so a GGUF that yields none is unreadable too.
        """
        from transformers import AutoConfig, GenerationConfig  # heavy optional: transformers

        refused = rejected()
        if self.gguf_file is not None:
            try:
                config = AutoConfig.from_pretrained(str(self.path), **self._common_kwargs())
            except refused as exc:
                raise InputError(unreadable(self.path / self.gguf_file, f"metadata gives no config ({one_line(exc)})",
                                             "download the GGUF again and compare its sha256")) from exc
            return config, GenerationConfig.from_model_config(config)
        loaded: list[Any] = []
        for name, read in (("config.json", AutoConfig.from_pretrained), ("generation_config.json", GenerationConfig.from_pretrained)):
            if not (self.path / name).is_file():
                loaded.append(None)
                continue
            # the JSON error with its line and column before transformers' (which has neither), and the token IDs
            # the markers compare, which transformers accepts of any type
            check_token_ids(self.path / name, read_json_object(self.path / name))
            kwargs = self._common_kwargs() if name == "config.json" else {}
            try:
                loaded.append(read(str(self.path), **kwargs))
            except refused as exc:
                raise InputError(unreadable(self.path / name, f"rejected by transformers ({one_line(exc)})")) from exc
        return loaded[0], loaded[1]

    # ---------------------------------------------------------------- tokenizer
    def _load_tokenizer(self) -> tuple[Any, dict[str, Any], tuple[Any, Any]]:
        """The cleaned tokenizer, its provenance, and ``(config, generation_config)``, read first so that a broken
        config file is named as such rather than as a tokenizer that would not load."""
        from transformers import AutoTokenizer  # heavy optional: transformers

        check_model_files(self.path, self.gguf_file)
        configs = self._load_configs()
        values: dict[str, dict] = {}
        for name in () if self.gguf_file else TOKENIZER_JSON:  # named, before transformers' error (which names none)
            if (self.path / name).is_file():
                values[name] = read_json_object(self.path / name)
                check_tokenizer_values(self.path / name, values[name])
        if self.gguf_file is None:  # a missing vocabulary loads as an empty one: refused here, not by the sentinels
            check_tokenizer_files(self.path, values.get("tokenizer_config.json", {}).get("tokenizer_class"))
        caught: tuple[type[Exception], ...] = (*rejected(), AttributeError)  # AttributeError: a wrong-typed value
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.path), **self._common_kwargs())
            # the first encode: transformers stores a wrong-typed value it does not check and fails on first use
            tokenizer(guard.SNAPSHOT_PROBE_TEXT)
            plain = tokenizer("Hello world", add_special_tokens=False)["input_ids"]
        except ImportError as exc:  # a tokenizer class whose backend package is not installed (MistralCommonBackend)
            if (missing := errors.missing_backend(exc, f"{self.path}: tokenizer class")) is None:
                raise  # another ImportError: the command line reports it as unexpected, with its traceback
            raise missing from exc
        except caught as exc:
            raise ConfigError(f"{self.path}: tokenizer could not be loaded ({type(exc).__name__}: {one_line(exc)}); "
                              "check the tokenizer files") from exc
        if not plain:  # the backstop for a file set check_tokenizer_files does not know: no vocabulary at all
            raise InputError(f"{self.path}: the tokenizer loaded with an empty vocabulary (\"Hello world\" encodes to "
                             "no tokens); its vocabulary file is missing or empty — copy the base model's tokenizer "
                             "files (tokenizer.json, or the files its tokenizer_class reads)")
        as_loaded = guard.snapshot(None, tokenizer)["tokenizer"]  # cleanroom's own code: outside the input guard
        changes = clean_tokenizer(tokenizer)
        setattr(tokenizer, guard.SNAPSHOT_ATTR, guard.snapshot(None, tokenizer))
        report = run_sentinels(tokenizer)
        if not report.ok:
            raise ContaminationError(f"{self.path}: sentinel checks failed: " + " | ".join(report.failures[:5]))
        info = {
            "tokenizer_as_loaded": {
                k: (hashlib.sha256(v.encode()).hexdigest() if isinstance(v, str) and "chat_template" in k else v)
                for k, v in as_loaded.items()
                if k != "added_tokens"
            },
            "tokenizer_changes": changes,
            "base_eos_id": guard.base_eos_id(tokenizer),
            "bos_required": guard.required_bos_id(tokenizer) is not None,
            "bos_id": guard.required_bos_id(tokenizer),
            "forbidden_ids": sorted(guard.forbidden_ids(tokenizer)),
            "sentinels": report.to_dict(),
        }
        return tokenizer, info, configs

    def _provenance(self, info: dict[str, Any], probe_result: Any) -> dict[str, Any]:
        dtype = self.dtype if self.dtype is None or isinstance(self.dtype, str) else str(self.dtype).replace("torch.", "")
        return {
            "loader_version": loader_version(),
            "requested_model": self.requested_model,
            "resolved_model_path": str(self.path.resolve()),
            "revision": self.revision,
            "gguf_file": self.gguf_file,
            "quantization": self.quantization,
            "dtype": dtype,
            "trust_remote_code": self.trust_remote_code,
            "allow_pickle": self.allow_pickle,
            "files": file_hashes(self.path, self.gguf_file),
            "allow_instruct": self.allow_instruct,
            "allow_instruct_reason": self.allow_instruct_reason,
            "probe": probe_result.to_dict() if probe_result is not None else None,
            **info,
        }

    def _decide(self, probe_result: Any) -> None:
        if probe_result.is_instruct and not self.allow_instruct:  # the fix is the library's: callers give theirs
            raise InstructModelError(
                f"{self.path}: looks like an instruct/chat model ({'; '.join(probe_result.reasons)}); cleanroom "
                "post-trains base models", "use the base checkpoint, or pass allow_instruct=True with "
                "allow_instruct_reason='why' (recorded in provenance)", probe_result)

    @held_console()  # transformers' console log shown after a load that succeeds, not above a refusal
    def load_tokenizer(self, *, decide: bool = True) -> tuple[Any, dict[str, Any]]:
        """The cleaned tokenizer and provenance, without weights (static base-or-instruct markers only).

        ``decide=False`` skips the base-or-instruct decision (provenance ``probe`` is None): for callers that
        only encode text with the tokenizer, such as ``scan-data``, where the model's kind is irrelevant.
        """
        tokenizer, info, (config, gen) = self._load_tokenizer()
        if not decide:
            return tokenizer, self._provenance(info, None)
        result = probe_model(tokenizer, config=config, generation_config=gen, names=self._model_names())
        self._decide(result)
        return tokenizer, self._provenance(info, result)

    # ---------------------------------------------------------------- model
    def _from_pretrained(self, quant: Any) -> Any:
        """The weights through transformers, with the loader's settings; what cannot be read or built from
        config.json is a ConfigError that names the suspect file."""
        from transformers import AutoModelForCausalLM  # heavy optional: transformers

        kwargs = self._common_kwargs()
        if quant is not None:
            kwargs["quantization_config"] = quant
        if self.device_map is not None:
            kwargs["device_map"] = self.device_map
        if self.gguf_file is None and not self.allow_pickle:
            kwargs["use_safetensors"] = True
        if self.gguf_file is not None:
            kwargs.update(gguf_dense_kwargs())
        from safetensors import SafetensorError  # heavy optional: safetensors

        try:
            with held_console() as held:  # its LOAD REPORT, read for the shapes that differ
                model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=torch_dtype(self.dtype, self.quantization),
                                                             **kwargs)
        except (TypeError, AttributeError, ArithmeticError, KeyError) as exc:
            # a config.json value transformers' validation lets through and model construction trips over
            # ("dtype": 5, "num_attention_heads": 0): the weights are not the suspect
            raise ConfigError(
                f"{self.path}: the model could not be built from config.json ({type(exc).__name__}: {one_line(exc)}); "
                "check its values (sizes must be positive integers, dtype a name such as \"bfloat16\"); if it is the "
                "model's own config.json, run with --debug and report the traceback"
            ) from exc
        except (OSError, ValueError, ImportError, SafetensorError, RuntimeError, pickle.UnpicklingError) as exc:
            if isinstance(exc, ImportError) and (missing := errors.missing_backend(exc, f"{self.path}: model class")):
                raise missing from exc  # a model class whose backend package is not installed
            weights = weight_files(self.path)
            shapes = held.mismatches()  # transformers' message only points at its report, held off the console
            why = f"shapes differ: {'; '.join(shapes[:3])}" if shapes else f"{type(exc).__name__}: {one_line(exc)}"
            if not shapes and held.records:  # its "look at the above report" points at what the console did not show
                why += "; --debug prints transformers' report"
            raise ConfigError(
                f"{self.path}: model weights ({weights}) could not be read ({why}); the file is "
                "truncated, corrupt or does not match config.json — download it again and compare its sha256"
            ) from exc
        return model

    def _check_vocabulary(self, tokens: int, rows: int, vocab_size: int) -> None:
        if tokens > rows or max(rows, vocab_size) - tokens > _MAX_EMBEDDING_PADDING:
            raise ConfigError(
                f"{self.path}: tokenizer has {tokens} tokens but the embedding has {rows} rows (config vocab_size "
                f"{vocab_size}; padding of at most {_MAX_EMBEDDING_PADDING} rows is normal); the tokenizer or config.json "
                "does not belong to this model — copy the model's own tokenizer files and config.json")

    @held_console()
    def load(self) -> tuple[Any, Any, dict[str, Any]]:
        """Return ``(model, tokenizer, provenance)``; raises ConfigError on bad input, ContaminationError on instruct."""
        _require_torch()
        check_model_files(self.path, self.gguf_file)
        check_weights(self.path, self.gguf_file, self.allow_pickle)
        if self.gguf_file is None and not (self.path / "config.json").is_file():  # before the weights are blamed
            raise InputError(f"{self.path}: no config.json, so the weights cannot be built; copy the model's "
                             f"config.json into {self.path}")
        quant = quantization_config(self.path, self.quantization, self.gguf_file)
        tokenizer, info, (config, _) = self._load_tokenizer()
        vocab = getattr(config, "vocab_size", None)  # the rows config.json builds, refused before a weight is read
        if self.gguf_file is None and isinstance(vocab, int):
            self._check_vocabulary(len(tokenizer), vocab, vocab)
        model = self._from_pretrained(quant)
        if self.gguf_file is not None:
            drop_gguf_quantizer(model, self.path / self.gguf_file)
        embedding: Any = model.get_input_embeddings()  # nn.Module: torch types .weight as Tensor | Module
        rows = embedding.weight.shape[0]
        self._check_vocabulary(len(tokenizer), rows, getattr(model.config, "vocab_size", None) or rows)
        model.eval()
        info["model_as_loaded"] = guard.snapshot(model, tokenizer)["model"]
        result = None
        if self.probe or not self.allow_instruct:
            result = probe_model(
                tokenizer,
                model=model if self.probe else None,
                config=model.config,
                generation_config=getattr(model, "generation_config", None),
                names=self._model_names(),
            )
            self._decide(result)
        info["model_changes"] = clean_model(model, guard.base_eos_id(tokenizer))
        setattr(model, guard.SNAPSHOT_ATTR, guard.snapshot(model, tokenizer)["model"])
        return model, tokenizer, self._provenance(info, result)


def _require_torch() -> None:
    """DependencyError with the install hint unless torch and transformers import (tests/test_core_install.py):
    on the core install a model load says what to install before it says anything about the model's files."""
    try:
        import torch  # noqa: F401  # heavy optional: torch
        import transformers  # noqa: F401  # heavy optional: transformers
    except ImportError as exc:
        raise DependencyError("the loader needs torch and transformers: pip install 'cleanroom[train]'") from exc


__all__ = ["CleanModelLoader", "clean_model", "clean_tokenizer", "loader_version", "refuse_chat_template"]


def read_model_config(directory: Path, gguf_file: str | None = None) -> dict[str, Any]:
    """A model's architecture config as a dict, without loading weights or a tokenizer.

    ``config.json`` when the directory has one, else the GGUF file's metadata through transformers.
    Lives in the loader because reading a GGUF's config is a ``from_pretrained`` call, which cleanroom's
    own code gates allow only in loader modules.
    """
    if (directory / "config.json").is_file():
        return read_json_object(directory / "config.json")
    if gguf_file is None:
        raise ConfigError(f"{directory}: no config.json (nor a GGUF file) to read the architecture from")
    from transformers import AutoConfig  # heavy optional: transformers

    try:
        return dict(AutoConfig.from_pretrained(str(directory), gguf_file=gguf_file).to_dict())
    except rejected() as exc:
        raise ConfigError(f"{directory / gguf_file}: GGUF metadata could not be read ({exc})") from exc

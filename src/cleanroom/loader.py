"""CleanModelLoader: load a *base* model and tokenizer with every chat-template route disarmed.

Size: ~510 lines, over the ~400 guideline on purpose: loading and cleaning are one step that must not be
separable (a caller that loads without cleaning is the fault this module exists to prevent); reading the model's
JSON files is part of loading (a broken one must stop the load, not switch a check off).

What "clean" means, and where each step lives:

* the chat template is removed from the tokenizer attribute and its ``init_kwargs`` (so a save writes no
  ``chat_template.jinja``), and ``apply_chat_template`` is replaced on the instance by a function that
  raises :class:`ContaminationError`;
* literal control strings encode as ordinary subwords: ``split_special_tokens=True``, and the non-special
  control tokens (Qwen2.5's ``<tool_call>``, FIM, repo/file) are re-registered as special in the backend
  so that flag covers them too — verified by ID by the sentinels;
* no BOS/EOS is added silently: ``add_bos_token``/``add_eos_token`` are set off unconditionally (a
  tokenizer.json post-processor may add BOS while the flag reads False; the setter rebuilds it). A tokenizer
  that added BOS as shipped (Llama-style) is marked BOS-required (``bos_required`` in provenance) and
  :func:`guard.encode` puts its BOS explicitly, once, at position 0; Qwen adds none;
* EOS and pad are the base EOS; config and generation_config eos/pad too (never ``<|im_end|>``);
* a snapshot of the state as loaded and as returned is kept on both objects for :func:`guard.recheck`;
* base-or-instruct: :mod:`cleanroom.probe`; instruct refused unless ``allow_instruct`` with a reason. A
  config.json or generation_config.json that is absent is fine (a tokenizer-only directory: the markers that
  read it do not fire); one that is there but unreadable is an :class:`InputError`, never a marker quietly off.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path
from typing import Any

from cleanroom import guard
from cleanroom.errors import ConfigError, ContaminationError, DependencyError, InputError, InstructModelError
from cleanroom.hashing import hash_file
from cleanroom.model_files import MODEL_META_FILES
from cleanroom.model_json import (
    TOKENIZER_JSON,
    check_token_ids,
    check_tokenizer_values,
    read_json_object,
    unreadable,
)
from cleanroom.probe import probe_model
from cleanroom.sentinels import run_sentinels

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
# The tokenizer's small JSON files, each a JSON object (tokenizer.json, megabytes, is left to the tokenizers library).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
_QUANTIZATIONS = (None, "nf4", "int8")
# Embedding rows beyond the tokenizer that are still padding, not a different vocabulary: Qwen2.5 pads its
# 151,665 tokens to 151,936 rows (271). A gap larger than this means a tokenizer from a smaller model.
_MAX_EMBEDDING_PADDING = 1024
_DTYPES = (None, "bfloat16", "float32", "float16")


def loader_version() -> str:
    """sha256 of this module's source: provenance pins the exact cleaning logic that ran."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


refuse_chat_template = guard.refuse_chat_template  # installed as tokenizer.apply_chat_template


def clean_tokenizer(tokenizer: Any) -> list[str]:
    """Disarm *tokenizer* in place (see the module docstring); return the list of changes made."""
    from tokenizers import AddedToken  # heavy optional: tokenizers

    changes = []
    eos = guard.base_eos_id(tokenizer)
    if getattr(tokenizer, "chat_template", None) is not None:
        changes.append("removed chat_template")
    tokenizer.chat_template = None
    if isinstance(getattr(tokenizer, "init_kwargs", None), dict) and tokenizer.init_kwargs.pop("chat_template", None):
        changes.append("removed chat_template from init_kwargs")
    tokenizer.apply_chat_template = refuse_chat_template
    backend = getattr(tokenizer, "backend_tokenizer", None)
    control = [(i, c) for i, (c, s) in guard.added_tokens(tokenizer).items() if not s and guard.CONTROL_TEXT.match(c)]
    if control and backend is not None:
        backend.add_special_tokens([AddedToken(c, special=True, normalized=False) for _, c in control])
        changes.append(f"re-registered {len(control)} non-special control tokens as special (split by ID)")
    tokenizer.split_special_tokens = True
    shipped = list(tokenizer("a")["input_ids"])
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    bos_required = bos is not None and shipped[:1] == [bos] and plain[:1] != [bos]
    for attr in ("add_bos_token", "add_eos_token"):
        # unconditionally: the flag may read False while the post-processor still adds the token
        if hasattr(tokenizer, attr) or bos_required:
            setattr(tokenizer, attr, False)
    if shipped != plain:
        changes.append(f"special tokens added to plain text turned off ({shipped} -> {plain} for 'a')")
    if bos_required:
        changes.append(f"BOS {bos} required by the model: added explicitly at position 0 by guard.encode")
    eos_text = tokenizer.convert_ids_to_tokens(eos)
    if tokenizer.eos_token_id != eos:
        changes.append(f"eos {tokenizer.eos_token!r} -> {eos_text!r}")
        tokenizer.eos_token = eos_text
    if tokenizer.pad_token_id != eos:
        changes.append(f"pad {tokenizer.pad_token!r} -> {eos_text!r}")
        tokenizer.pad_token = eos_text
    if tokenizer("a")["input_ids"] != tokenizer("a", add_special_tokens=False)["input_ids"]:
        raise ContaminationError(
            f"tokenizer {tokenizer.name_or_path}: still adds tokens to plain text after cleaning; "
            "its post-processor cannot be switched off — report this tokenizer"
        )
    tokenizer._cleanroom_base_eos = eos
    setattr(tokenizer, guard.BOS_REQUIRED_ATTR, bos if bos_required else None)
    tokenizer._cleanroom_forbidden = None
    tokenizer._cleanroom_forbidden = guard.forbidden_ids(tokenizer)
    return changes


def clean_model(model: Any, eos: int) -> list[str]:
    """Set config and generation_config eos/pad to the base EOS; return the changes."""
    changes = []
    for owner_name in ("config", "generation_config"):
        owner = getattr(model, owner_name, None)
        if owner is None:
            continue
        for attr in ("eos_token_id", "pad_token_id"):
            if getattr(owner, attr, None) != eos:
                changes.append(f"{owner_name}.{attr}: {getattr(owner, attr, None)!r} -> {eos}")
                setattr(owner, attr, eos)
    return changes


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
        if quantization not in _QUANTIZATIONS:
            raise ConfigError(f"quantization={quantization!r}: expected one of {_QUANTIZATIONS}")
        if isinstance(dtype, str) and dtype not in _DTYPES:
            raise ConfigError(f"dtype={dtype!r}: expected one of {_DTYPES} or a torch.dtype")
        if allow_instruct and not (allow_instruct_reason or "").strip():
            raise ConfigError("allow_instruct=True needs a non-empty allow_instruct_reason (it is recorded in provenance)")
        self.requested_model = str(model_path)
        self.path = Path(model_path).expanduser()
        if self.path.suffix == ".gguf" and gguf_file is None:  # a GGUF file given directly
            self.path, gguf_file = self.path.parent, self.path.name
        elif gguf_file is None and self.path.is_dir() and not any((self.path / f).is_file() for f in _TOKENIZER_FILES):
            ggufs = sorted(self.path.glob("*.gguf"))
            if len(ggufs) == 1:  # a directory holding one GGUF and nothing else: that file is the model
                gguf_file = ggufs[0].name
        self.quantization, self.dtype, self.device_map, self.revision = quantization, dtype, device_map, revision
        self.allow_instruct, self.allow_instruct_reason = bool(allow_instruct), allow_instruct_reason
        self.trust_remote_code, self.allow_pickle = bool(trust_remote_code), bool(allow_pickle)
        self.gguf_file, self.probe = gguf_file, bool(probe)

    # ---------------------------------------------------------------- checks on files
    def _check_files(self) -> None:
        if self.path.is_file():
            raise ConfigError(f"{self.path}: is a file, not a model directory; pass the directory that holds the model's "
                              "config, tokenizer and weights (or a .gguf file)")
        if not self.path.is_dir():
            raise ConfigError(f"model directory {self.path} does not exist; pass a local model directory (no hub downloads)")
        if self.gguf_file is not None:
            if not (self.path / self.gguf_file).is_file():
                raise ConfigError(f"{self.path / self.gguf_file}: GGUF file not found; check gguf_file=")
            return
        if not any((self.path / f).is_file() for f in _TOKENIZER_FILES):
            raise ConfigError(
                f"{self.path}: no tokenizer files ({', '.join(_TOKENIZER_FILES)}); copy the base model's tokenizer into it"
            )

    def _check_weights(self) -> None:
        if self.gguf_file is not None:
            return
        if any(self.path.glob("*.safetensors")):
            return
        pickles = sorted(p.name for p in self.path.glob("*.bin")) + sorted(p.name for p in self.path.glob("*.pt"))
        if pickles and not self.allow_pickle:
            raise ConfigError(
                f"{self.path}: only pickle weights ({', '.join(pickles[:3])}) — pickle can run code; convert to "
                "safetensors or pass allow_pickle=True"
            )
        if not pickles:
            raise ConfigError(f"{self.path}: no weights (*.safetensors or GGUF); pass the model directory")

    def _file_hashes(self) -> dict[str, str]:
        names = list(MODEL_META_FILES) + ([self.gguf_file] if self.gguf_file else [])
        return {n: hash_file(self.path / n) for n in names if (self.path / n).is_file()}  # cached: provenance hashes them too

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

        rejected = _rejected()
        if self.gguf_file is not None:
            try:
                config = AutoConfig.from_pretrained(str(self.path), **self._common_kwargs())
            except rejected as exc:
                raise InputError(unreadable(self.path / self.gguf_file, f"metadata gives no config ({_one_line(exc)})",
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
            except rejected as exc:
                raise InputError(unreadable(self.path / name, f"rejected by transformers ({_one_line(exc)})")) from exc
        return loaded[0], loaded[1]

    # ---------------------------------------------------------------- tokenizer
    def _load_tokenizer(self) -> tuple[Any, dict[str, Any], tuple[Any, Any]]:
        """The cleaned tokenizer, its provenance, and ``(config, generation_config)``, read first so that a broken
        config file is named as such rather than as a tokenizer that would not load."""
        from transformers import AutoTokenizer  # heavy optional: transformers

        self._check_files()
        configs = self._load_configs()
        for name in () if self.gguf_file else TOKENIZER_JSON:  # named, before transformers' error (which names none)
            if (self.path / name).is_file():
                check_tokenizer_values(self.path / name, read_json_object(self.path / name))
        caught: tuple[type[Exception], ...] = (*_rejected(), AttributeError)  # AttributeError: a wrong-typed value
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.path), **self._common_kwargs())
            # the first encode: transformers stores a wrong-typed value it does not check and fails on first use
            tokenizer(guard.SNAPSHOT_PROBE_TEXT)
        except caught as exc:
            raise ConfigError(f"{self.path}: tokenizer could not be loaded ({type(exc).__name__}: {_one_line(exc)}); "
                              "check the tokenizer files") from exc
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
            "files": self._file_hashes(),
            "allow_instruct": self.allow_instruct,
            "allow_instruct_reason": self.allow_instruct_reason,
            "probe": probe_result.to_dict() if probe_result is not None else None,
            **info,
        }

    def _decide(self, probe_result: Any) -> None:
        if probe_result.is_instruct and not self.allow_instruct:
            exc = InstructModelError(
                f"{self.path}: looks like an instruct/chat model ({'; '.join(probe_result.reasons)}); cleanroom "
                "post-trains base models — use the base checkpoint, or pass allow_instruct=True with a reason"
            )
            exc.probe = probe_result  # type: ignore[attr-defined]  # the scores, for inspect-model --json
            raise exc

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
    def _quantization_config(self) -> Any:
        if self.quantization is None:
            return None
        try:
            # heavy optional: bitsandbytes
            import bitsandbytes  # noqa: F401
            import torch  # heavy optional: torch
            from transformers import BitsAndBytesConfig  # heavy optional: transformers
        except ImportError as exc:
            raise ConfigError(
                f"{self.path}: quantization={self.quantization!r} is not available on this machine ({exc}); "
                "pip install bitsandbytes, or pass quantization=None"
            ) from exc
        if self.gguf_file is not None:
            raise ConfigError(f"{self.gguf_file}: GGUF weights are already quantized; pass quantization=None")
        if self.quantization == "int8":
            return BitsAndBytesConfig(load_in_8bit=True)
        compute = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
        )

    def _torch_dtype(self) -> Any:
        import torch  # heavy optional: torch

        if self.dtype is None:
            return "auto" if self.quantization is None else (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
        return getattr(torch, self.dtype) if isinstance(self.dtype, str) else self.dtype

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
            kwargs.update(_gguf_dense_kwargs())
        from safetensors import SafetensorError  # heavy optional: safetensors

        try:
            model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=self._torch_dtype(), **kwargs)
        except (TypeError, AttributeError, ArithmeticError, KeyError) as exc:
            # a config.json value transformers' validation lets through and model construction trips over
            # ("dtype": 5, "num_attention_heads": 0): the weights are not the suspect
            raise ConfigError(
                f"{self.path}: the model could not be built from config.json ({type(exc).__name__}: {_one_line(exc)}); "
                "check its values (sizes must be positive integers, dtype a name such as \"bfloat16\"); if it is the "
                "model's own config.json, run with --debug and report the traceback"
            ) from exc
        except (OSError, ValueError, ImportError, SafetensorError, RuntimeError, pickle.UnpicklingError) as exc:
            weights = ", ".join(sorted(p.name for p in self.path.iterdir() if p.suffix in _WEIGHT_SUFFIXES)) or "?"
            raise ConfigError(
                f"{self.path}: model weights ({weights}) could not be read ({type(exc).__name__}: {_one_line(exc)}); the file is "
                "truncated, corrupt or does not match config.json — download it again and compare its sha256"
            ) from exc
        return model

    def load(self) -> tuple[Any, Any, dict[str, Any]]:
        """Return ``(model, tokenizer, provenance)``; raises ConfigError on bad input, ContaminationError on instruct."""
        _require_torch()
        self._check_files()
        self._check_weights()
        quant = self._quantization_config()
        tokenizer, info, _ = self._load_tokenizer()
        model = self._from_pretrained(quant)
        if self.gguf_file is not None:
            _drop_gguf_quantizer(model, self.path / self.gguf_file)
        embedding: Any = model.get_input_embeddings()  # nn.Module: torch types .weight as Tensor | Module
        rows = embedding.weight.shape[0]
        vocab_size = getattr(model.config, "vocab_size", None) or rows
        if len(tokenizer) > rows or max(rows, vocab_size) - len(tokenizer) > _MAX_EMBEDDING_PADDING:
            raise ConfigError(
                f"{self.path}: tokenizer has {len(tokenizer)} tokens but the embedding has {rows} rows "
                f"(config vocab_size {vocab_size}; padding of at most {_MAX_EMBEDDING_PADDING} rows is normal); the "
                "tokenizer does not belong to this model — copy the model's own tokenizer files"
            )
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


def _gguf_dense_kwargs() -> dict[str, Any]:
    """Ask transformers for a dense (dequantized) model from a GGUF file.

    Newer transformers (5.2x) keep GGUF weights packed when a matmul kernel is installed; a packed
    model can neither train LoRA nor be compared across machines, so the loader always asks for the
    dense form. Older releases have no ``GgufConfig`` and always dequantize.
    """
    try:
        # heavy optional: transformers
        from transformers import GgufConfig  # type: ignore[attr-defined]
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _drop_gguf_quantizer(model: Any, gguf_path: Path) -> None:
    """Detach the GGUF quantizer from a model whose weights were all dequantized at load.

    transformers leaves ``hf_quantizer`` (method GGUF, not trainable) on the dense model, and its
    Trainer then refuses to fine-tune it. With every weight a plain tensor the quantizer describes
    nothing real, so it goes; a model that still holds packed GGUF blocks is refused instead.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    if getattr(quantizer, "packed_modules", None):
        raise ConfigError(
            f"{gguf_path}: transformers kept the GGUF weights packed ({len(quantizer.packed_modules)} modules); "
            "cleanroom needs a dense model to train and compare: upgrade transformers or convert the GGUF to safetensors"
        )
    quantizer.remove_quantization_config(model)


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
    except _rejected() as exc:
        raise ConfigError(f"{directory / gguf_file}: GGUF metadata could not be read ({exc})") from exc



def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (the CLI prints errors as one line; transformers' span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _rejected() -> tuple[type[Exception], ...]:
    """What transformers raises for a model file it cannot read (struct.error: a GGUF cut short)."""
    from huggingface_hub.errors import StrictDataclassError  # heavy optional: huggingface_hub

    return (OSError, ValueError, TypeError, KeyError, StrictDataclassError, struct.error)

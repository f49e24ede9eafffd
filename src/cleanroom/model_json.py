"""A model directory's small JSON files, read strictly: config.json, generation_config.json and the tokenizer's
JSON files.

A file that is there but is not valid JSON, not a JSON object, or holds a value of a type the libraries take
unchecked and trip over later (a token ID that is a string; ``"model_max_length": "x"``, a TypeError at the
first encode) is an :class:`~cleanroom.errors.InputError` naming the file and the key, so the checks that read
it never quietly do not run. An absent config file is the caller's business (a tokenizer-only directory); an
absent vocabulary file is not: :func:`check_tokenizer_files` refuses a directory whose ``tokenizer_class`` has
none of the file sets it can be built from (transformers would build it with an empty vocabulary).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from cleanroom.errors import InputError, MissingFileError, missing_backend
from cleanroom.jsonl import loads

#: The tokenizer's own JSON files, whose values :func:`check_tokenizer_values` checks.
TOKENIZER_JSON = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}


def read_json_object(path: Path) -> dict[str, Any]:
    """A model directory's JSON file as a dict; one that is there but is not a JSON object is an InputError."""
    try:
        value = loads(path.read_bytes(), strict=False)
    except ValueError as exc:  # JSONDecodeError (its message carries line and column) and UnicodeDecodeError
        raise InputError(unreadable(path, f"is not valid JSON ({exc})")) from exc
    if not isinstance(value, dict):
        raise InputError(unreadable(path, f"holds {_JSON_TYPES[type(value)]}, not a JSON object"))
    return value


def rejected() -> tuple[type[Exception], ...]:
    """What transformers raises for a model file it cannot read (struct.error: a GGUF cut short)."""
    from huggingface_hub.errors import StrictDataclassError  # heavy optional: huggingface_hub

    return (OSError, ValueError, TypeError, KeyError, StrictDataclassError, struct.error)


def unreadable(path: Path, what: str, fix: str = "restore the file from the model's repository "
                "(download it again and compare its sha256)") -> str:
    return f"{path}: {what}; the checks that read it cannot run — {fix}"


def check_token_ids(path: Path, values: dict[str, Any]) -> None:
    """Every top-level ``*_token_id`` is null, an integer or a list of integers (the markers compare them as IDs)."""
    for key, value in values.items():
        ids = value if isinstance(value, list) else [value]
        if key.endswith("token_id") and value is not None and not all(type(v) is int for v in ids):
            raise InputError(unreadable(path, f"{key} is {json.dumps(value)}, expected a token ID (an integer) "
                                               "or a list of them"))


#: The types of tokenizer_config.json values transformers takes unchecked and fails on at first use
#: (``"model_max_length": "x"`` passes loading and is a TypeError inside the first encode).
TOKENIZER_VALUE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model_max_length": ((int, float), "a number"),
    **{k: ((bool,), "true or false") for k in ("add_bos_token", "add_eos_token", "add_prefix_space",
                                               "clean_up_tokenization_spaces", "legacy", "split_special_tokens")},
    **{k: ((str,), '"left" or "right"') for k in ("padding_side", "truncation_side")},
    **{f"{k}_token": ((str, dict), "a token string or an AddedToken object")
       for k in ("bos", "eos", "unk", "pad", "sep", "cls", "mask")},
    "added_tokens_decoder": ((dict,), "an object of {id: token}"),
}


def check_tokenizer_values(path: Path, values: dict[str, Any]) -> None:
    """Each value of :data:`TOKENIZER_VALUE_TYPES` is null or of its type (bool is no number here)."""
    for key, (types, expected) in TOKENIZER_VALUE_TYPES.items():
        value = values.get(key)
        if value is not None and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))
                                  or (key.endswith("_side") and value not in ("left", "right"))):
            raise InputError(unreadable(path, f"{key} is {json.dumps(value)[:60]}, expected {expected} (or null)",
                                         "fix the value, or restore the file from the model's repository"))


def tokenizer_file_sets(tokenizer_class: str) -> list[tuple[str, ...]] | None:
    """The file sets *tokenizer_class* can be built from, each complete on its own: ``tokenizer.json`` (a fast
    tokenizer, serialized), or every slow file its class names (``vocab.json`` + ``merges.txt``,
    ``tokenizer.model``), which transformers converts. None for a class transformers does not know (its own
    error names it) or one that names no file."""
    # heavy optional: transformers
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    cls = tokenizer_class_from_name(tokenizer_class)
    names: dict[str, str] = dict(getattr(cls, "vocab_files_names", None) or {})
    sets: list[tuple[str, ...]] = [(names.pop("tokenizer_file"),)] if "tokenizer_file" in names else []
    if names:
        sets.append(tuple(sorted(set(names.values()))))
    return sets or None


def check_tokenizer_files(directory: Path, tokenizer_class: Any = None) -> None:
    """:class:`MissingFileError` unless *directory* holds one complete file set of *tokenizer_class* (the value
    its tokenizer_config.json names, as the loader read it; :func:`tokenizer_file_sets`). Without one, transformers does not fail: it builds the class with an empty
    vocabulary (``"Hello world"`` encodes to ``[]``), which the sentinels would then report as contamination."""
    if (directory / "tokenizer.json").is_file():
        return  # a serialized fast tokenizer loads whatever its class names (GPT2Tokenizer lists only vocab+merges)
    try:
        sets = tokenizer_file_sets(tokenizer_class) if isinstance(tokenizer_class, str) else None
    except ImportError as exc:  # transformers refuses a class whose backend is not installed (MistralCommonBackend)
        if (hint := missing_backend(exc, f"{directory}: tokenizer class")) is None:
            raise
        raise hint from exc
    if sets is None or any(all((directory / name).is_file() for name in group) for group in sets):
        return
    options = " or ".join(" + ".join(group) for group in sets)
    missing = sorted({name for group in sets for name in group if not (directory / name).is_file()})
    raise MissingFileError(
        f"{directory}: tokenizer files missing ({', '.join(missing)}): tokenizer_config.json names tokenizer_class "
        f"{tokenizer_class!r}, which is built from {options}; copy the base model's tokenizer files into {directory}"
    )


__all__ = ["TOKENIZER_JSON", "TOKENIZER_VALUE_TYPES", "check_token_ids", "check_tokenizer_files",
           "check_tokenizer_values", "read_json_object", "rejected", "tokenizer_file_sets", "unreadable"]

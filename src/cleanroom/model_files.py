"""The files that decide a model's behaviour: the one list every hasher and checker uses.

A model directory's config, generation config, tokenizer files, chat templates, weight index files and
adapter config, plus its weight shards (matched by suffix). Other files (README, images) do not change
what the model does, so they are left out of its digests.
"""

from __future__ import annotations

import os
from pathlib import Path

from cleanroom.errors import MissingFileError
from cleanroom.hashing import hash_file

# Model-directory files whose bytes decide behaviour. Weight shards are matched by suffix.
MODEL_META_FILES: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "adapter_config.json",
)
WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".gguf", ".bin", ".pt", ".pth")


def model_file_digests(model_path: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative name: sha256}`` of a model's config, generation config, tokenizer and weight files.

    *model_path* is a model directory or a single weight file (a GGUF). Other files (README, images)
    do not change behaviour and are left out.
    """
    p = Path(model_path)
    if p.is_file():
        return {p.name: hash_file(p)}
    if not p.is_dir():
        raise MissingFileError(
            f"model path {p} does not exist locally; cleanroom hashes local files only — download the "
            "model first and pass its directory"
        )
    out: dict[str, str] = {}
    for f in sorted(p.rglob("*")):
        if not f.is_file() or any(part.startswith(".") for part in f.relative_to(p).parts):
            continue
        if f.name in MODEL_META_FILES or f.suffix in WEIGHT_SUFFIXES:
            out[f.relative_to(p).as_posix()] = hash_file(f)
    return out


__all__ = ["MODEL_META_FILES", "WEIGHT_SUFFIXES", "model_file_digests"]

"""A model directory's files, checked before anything is read from them (the loader's first step).

Which directory and GGUF file the path given names; that the tokenizer files and the weights are there; that
the weights are not pickle (``*.bin``, ``*.pt``: unpickling can run code) unless the caller allows it; and the
digests of the files that decide the model's behaviour, for provenance. Checked first, a wrong path is named
as a wrong path, not as a tokenizer or weights that would not load.
"""

from __future__ import annotations

from pathlib import Path

from cleanroom.errors import ConfigError
from cleanroom.hashing import hash_file
from cleanroom.model_files import MODEL_META_FILES

#: The files a model directory holds a tokenizer in (one of them is enough).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def resolve_model_path(path: Path, gguf_file: str | None) -> tuple[Path, str | None]:
    """``(directory, GGUF file)`` for the path given: a ``.gguf`` file is its directory and itself; a directory
    holding one GGUF and no tokenizer file is that GGUF; anything else is as given."""
    if path.suffix == ".gguf" and gguf_file is None:  # a GGUF file given directly
        return path.parent, path.name
    if gguf_file is None and path.is_dir() and not any((path / f).is_file() for f in TOKENIZER_FILES):
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:  # a directory holding one GGUF and nothing else: that file is the model
            return path, ggufs[0].name
    return path, gguf_file


def check_model_files(path: Path, gguf_file: str | None) -> None:
    """ConfigError unless *path* is a directory with a tokenizer (:data:`TOKENIZER_FILES`) or its *gguf_file*."""
    if path.is_file():
        raise ConfigError(f"{path}: is a file, not a model directory; pass the directory that holds the model's "
                          "config, tokenizer and weights (or a .gguf file)")
    if not path.is_dir():
        raise ConfigError(f"model directory {path} does not exist; pass a local model directory (no hub downloads)")
    if gguf_file is not None:
        if not (path / gguf_file).is_file():
            raise ConfigError(f"{path / gguf_file}: GGUF file not found; check gguf_file=")
        return
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ConfigError(
            f"{path}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); copy the base model's tokenizer into it"
        )


def check_weights(path: Path, gguf_file: str | None, allow_pickle: bool) -> None:
    """ConfigError unless *path* holds weights: a GGUF, safetensors, or pickle weights with *allow_pickle*."""
    if gguf_file is not None:
        return
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
    if pickles and not allow_pickle:
        raise ConfigError(
            f"{path}: only pickle weights ({', '.join(pickles[:3])}) — pickle can run code; convert to "
            "safetensors or pass allow_pickle=True"
        )
    if not pickles:
        raise ConfigError(f"{path}: no weights (*.safetensors or GGUF); pass the model directory")


def weight_files(path: Path) -> str:
    """The weight files in *path*, comma-separated, for a message about weights that could not be read."""
    return ", ".join(sorted(p.name for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES)) or "?"


def file_hashes(path: Path, gguf_file: str | None) -> dict[str, str]:
    """sha256 of each file in *path* that decides the model's behaviour (:data:`MODEL_META_FILES`, the GGUF)."""
    names = list(MODEL_META_FILES) + ([gguf_file] if gguf_file else [])
    return {n: hash_file(path / n) for n in names if (path / n).is_file()}  # cached: provenance hashes them too


__all__ = ["TOKENIZER_FILES", "check_model_files", "check_weights", "file_hashes",
           "resolve_model_path", "weight_files"]

"""Where the gates' settings come from: the ``pyproject.toml`` holding ``[tool.cleanroom.gates]``
nearest above the code gated, looking no higher than the repository root.

A package's own pyproject without the table does not end the search (a monorepo's root table
governs its packages); PATHs governed by different tables in one run are an input error, since
applying one table would silently drop the other's settings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cleanroom.errors import ConfigError, InputError


def gates_table(data: dict[str, object], path: Path) -> dict[str, object] | None:
    """``[tool.cleanroom.gates]`` of a parsed pyproject, None when absent; each level must be a table."""
    table = data
    dotted = ""
    for key in ("tool", "cleanroom", "gates"):
        value = table.get(key)
        dotted = f"{dotted}.{key}" if dotted else key
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ConfigError(
                f"{path}: {dotted} must be a table, got {type(value).__name__} {value!r}; "
                f"write the settings under a [tool.cleanroom.gates] header"
            )
        table = value
    return table


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` in *start* or its parents."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def find_config(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` holding ``[tool.cleanroom.gates]`` in *start* or its parents, looking
    no higher than the repository root (the first folder holding ``.git``); None when there is none.

    A package's own pyproject without the table does not end the search: in a monorepo, gating
    ``packages/foo`` reads the root's table, not the defaults."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and gates_table(read_toml(candidate), candidate) is not None:
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def config_for_paths(paths: Sequence[str | Path]) -> tuple[Path | None, Path | None]:
    """(the pyproject whose ``[tool.cleanroom.gates]`` governs every PATH in *paths*, or None for the
    defaults; the folder the search starts from: the PATHs' deepest common folder, None without paths).

    Paths are relative to the cwd. Gating another repository from inside this one reads that
    repository's table (or the defaults), never the cwd project's loader modules and excludes. PATHs
    governed by different tables (or one by a table, one by none) are an :class:`InputError`: no one
    table can be applied to both without dropping the other's settings."""
    if not paths:
        return None, None
    full = [Path(os.path.normpath(Path.cwd() / given)) for given in paths]
    folders = [f if f.is_dir() else f.parent for f in full]  # a file, or a FIFO named by mistake: its folder
    governing: dict[Path | None, str] = {}
    for given, folder in zip(paths, folders, strict=True):
        governing.setdefault(find_config(folder), str(given))
    if len(governing) > 1:
        (one, first), (other, second) = list(governing.items())[:2]
        raise InputError(
            f"PATHs {first} and {second} are governed by different configurations ({one or 'the defaults'} and "
            f"{other or 'the defaults'}); gate them in separate runs, or pass --config PYPROJECT to apply one table to both"
        )
    return next(iter(governing)), Path(os.path.commonpath([str(f) for f in folders]))


def read_toml(path: Path) -> dict[str, Any]:
    """A pyproject parsed; invalid TOML or text is a :class:`ConfigError` (never skipped: it may hold the table)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from exc


__all__ = ["config_for_paths", "find_config", "find_pyproject", "gates_table", "read_toml"]

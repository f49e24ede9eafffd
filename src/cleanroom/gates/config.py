"""The gates' configuration: ``[tool.cleanroom.gates]`` in the user's ``pyproject.toml``.

Two lines are enough to adopt the gates in another repository::

    [tool.cleanroom.gates]
    loader_modules = ["src/mylab/load.py"]

Keys: ``paths`` (what to scan, default ``["."]``), ``exclude`` (paths or glob patterns),
``loader_modules`` (files, directories or dotted module names where the migration rules CR1xx–CR4xx
do not apply) and ``disable`` (rule ids). Unknown keys, wrong types and unknown rule ids are a
:class:`~cleanroom.errors.ConfigError`: a misspelt ``exlude`` must not silently scan everything.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cleanroom.errors import ConfigError, MissingFileError
from cleanroom.gates.rules import RULES_BY_ID

_KEYS = ("paths", "exclude", "loader_modules", "disable")
_EXAMPLES = {
    "paths": '["src", "scripts"]',
    "exclude": '["tests/fixtures"]',
    "loader_modules": '["src/mylab/load.py"]',
    "disable": '["CR502"]',
}


@dataclass(frozen=True)
class GateConfig:
    """Resolved gate settings; relative paths are relative to ``root`` (the pyproject's folder)."""

    root: Path
    paths: tuple[str, ...] = (".",)
    exclude: tuple[str, ...] = ()
    loader_modules: tuple[str, ...] = ()
    disable: frozenset[str] = field(default_factory=frozenset)
    source: str = "defaults"

    def is_excluded(self, rel: str) -> bool:
        """True when the root-relative POSIX path *rel* matches an ``exclude`` entry."""
        for pattern in self.exclude:
            stem = pattern.rstrip("/")
            if rel == stem or rel.startswith(stem + "/") or fnmatch.fnmatchcase(rel, pattern):
                return True
        return False

    def is_loader(self, rel: str) -> bool:
        """True when *rel* is (inside) a loader module, given as a path or a dotted module name."""
        for entry in self.loader_modules:
            if "/" in entry or entry.endswith(".py"):
                stem = entry.rstrip("/")
                if rel == stem or rel.startswith(stem + "/"):
                    return True
            else:
                dotted = entry.replace(".", "/")
                padded = "/" + rel
                if padded.endswith("/" + dotted + ".py") or ("/" + dotted + "/") in padded:
                    return True
        return False

    def to_dict(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "source": self.source,
            "paths": list(self.paths),
            "exclude": list(self.exclude),
            "loader_modules": list(self.loader_modules),
            "disable": sorted(self.disable),
        }


def _string_list(table: dict[str, object], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            f"{where}: [tool.cleanroom.gates] {key} must be a list of non-empty strings, got {value!r}; "
            f"write e.g. {key} = {_EXAMPLES[key]}"
        )
    return tuple(v.strip() for v in value)


def _gates_table(data: dict[str, object], path: Path) -> dict[str, object] | None:
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


def load_config(pyproject: str | Path | None = None, *, start: str | Path | None = None) -> GateConfig:
    """Read ``[tool.cleanroom.gates]`` from *pyproject* (or the nearest one above *start* / the cwd).

    Without a pyproject, or without the table, the defaults apply: scan ``.``, no loader module,
    every rule on.
    """
    if pyproject is None:
        base = Path(start) if start is not None else Path.cwd()
        found = find_pyproject(base)
        if found is None:
            return GateConfig(root=base.resolve())
        pyproject = found
    path = Path(pyproject)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such pyproject.toml; pass --config PATH to an existing file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from exc
    root = path.resolve().parent
    table = _gates_table(data, path)
    if table is None:
        return GateConfig(root=root, source=str(path))
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)} in [tool.cleanroom.gates]; allowed: {', '.join(_KEYS)}"
        )
    disable = _string_list(table, "disable", str(path))
    bad = [r for r in disable if r not in RULES_BY_ID]
    if bad:
        raise ConfigError(
            f"{path}: [tool.cleanroom.gates] disable names unknown rule(s) {', '.join(bad)}; "
            f"known: {', '.join(RULES_BY_ID)}"
        )
    paths = _string_list(table, "paths", str(path))
    if "paths" in table and not paths:
        raise ConfigError(
            f"{path}: [tool.cleanroom.gates] paths = [] gates nothing; name what to scan, "
            f'e.g. paths = {_EXAMPLES["paths"]}, or drop the key to scan the whole repository (".")'
        )
    return GateConfig(
        root=root,
        paths=paths or (".",),
        exclude=_string_list(table, "exclude", str(path)),
        loader_modules=_string_list(table, "loader_modules", str(path)),
        disable=frozenset(disable),
        source=str(path),
    )

"""The gates' configuration: ``[tool.cleanroom.gates]`` in the user's ``pyproject.toml``.

Two lines are enough to adopt the gates in another repository::

    [tool.cleanroom.gates]
    loader_modules = ["src/mylab/load.py"]

Keys: ``paths`` (what to scan, default ``["."]``), ``exclude`` (paths or glob patterns),
``default_excludes`` (default true: folders named ``build``, ``dist``, ``node_modules``,
``site-packages`` or ``__pycache__``, and hidden folders other than version control, environments and
caches, are skipped, and the report lists those that held Python files; false checks them too),
``loader_modules`` (files, directories or dotted module names where the migration rules CR1xx–CR4xx
do not apply; each must exist), ``select`` (the rules to run, default every rule but the
off-by-default CR103), ``disable`` (rule ids), ``per_path_ignores`` (a table of path glob → rule
ids, as ruff's per-file-ignores) and ``helpers`` (a table of qualified function name → the rule
it breaks inside, added to :data:`~cleanroom.code_gates.vocabulary.HELPERS`). Unknown keys, wrong types and unknown rule ids are a
:class:`~cleanroom.errors.ConfigError`: a misspelt ``exlude`` must not silently scan everything.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cleanroom.code_gates.discovery import (
    find_config,
    find_pyproject,
    gates_table,
    read_toml,
)
from cleanroom.code_gates.rules import DEFAULT_RULES, RULES_BY_ID
from cleanroom.errors import ConfigError, MissingFileError

_KEYS = ("paths", "exclude", "default_excludes", "loader_modules", "select", "disable", "per_path_ignores", "helpers")
_EXAMPLES = {
    "paths": '["src", "scripts"]',
    "exclude": '["tests/fixtures"]',
    "loader_modules": '["src/mylab/load.py"]',
    "disable": '["CR502"]',
    "select": '["CR101", "CR103"]',
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
    select: frozenset[str] = DEFAULT_RULES
    per_path_ignores: tuple[tuple[str, frozenset[str]], ...] = ()
    helpers: tuple[tuple[str, str], ...] = ()
    default_excludes: bool = True
    searched_from: str = ""  # with source "defaults": the folder above which no table was found

    @property
    def off(self) -> frozenset[str]:
        """Rules not reported anywhere: not selected, or disabled."""
        return frozenset(RULES_BY_ID) - self.select | self.disable

    def off_for(self, rel: str, covering: tuple[tuple[str, frozenset[str]], ...] | None = None) -> frozenset[str]:
        """Rules not reported in the root-relative file *rel* (``off`` plus its per-path ignores; *covering*:
        :meth:`path_ignores_for` of *rel* when the caller has it already, so each pattern is matched once)."""
        extra = [rules for _, rules in (self.path_ignores_for(rel) if covering is None else covering)]
        return self.off.union(*extra) if extra else self.off

    def path_ignores_for(self, rel: str) -> tuple[tuple[str, frozenset[str]], ...]:
        """The ``per_path_ignores`` entries (pattern, rules) whose pattern covers the root-relative file *rel*."""
        return tuple((pattern, rules) for pattern, rules in self.per_path_ignores if _matches(rel, pattern))

    def loader_dotted(self) -> tuple[str, ...]:
        """The loader modules as dotted names, each also without leading folders (``src.mylab.load``,
        ``mylab.load``, ``load``), to match the modules an import names."""
        out: list[str] = []
        for entry in self.loader_modules:
            stem = entry.rstrip("/")
            if "/" in stem or stem.endswith(".py"):
                stem = stem.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            parts = stem.split(".")
            out.extend(".".join(parts[i:]) for i in range(len(parts)))
        return tuple(out)

    def is_loader_callee(self, qual: str) -> bool:
        """True when the qualified callee *qual* was imported from a loader module, directly or
        through a package's re-export (``from .actor import Actor`` in ``models/__init__.py``)."""
        return _from_loader(self.root, self.loader_dotted(), qual.lstrip("."), 3)

    def is_excluded(self, rel: str) -> bool:
        """True when the root-relative POSIX path *rel* matches an ``exclude`` entry."""
        return any(_matches(rel, pattern) for pattern in self.exclude)

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
            "searched_from": self.searched_from,
            "paths": list(self.paths),
            "exclude": list(self.exclude),
            "default_excludes": self.default_excludes,
            "loader_modules": list(self.loader_modules),
            "disable": sorted(self.disable),
            "select": sorted(self.select),
            "per_path_ignores": {p: sorted(r) for p, r in self.per_path_ignores},
            "helpers": dict(self.helpers),
        }


@functools.lru_cache(maxsize=4096)
def _from_loader(root: Path, loaders: tuple[str, ...], qual: str, depth: int) -> bool:
    module, _, name = qual.rpartition(".")
    if not module:
        return False
    if any(module == d or module.endswith("." + d) or module.startswith(d + ".") for d in loaders):
        return True
    if depth == 0:
        return False
    for base in (root, root / "src"):
        init = base / module.replace(".", "/") / "__init__.py"
        if init.is_file():
            return any(_from_loader(root, loaders, q, depth - 1) for q in _reexports(init, module, name))
    return False


def _reexports(init: Path, package: str, name: str) -> list[str]:
    """The qualified names a package's ``__init__.py`` binds *name* to by ``from X import name``."""
    try:
        tree = ast.parse(init.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
                    module = ".".join(p for p in (base, node.module or "") if p)
                    out.append(f"{module}.{alias.name}")
    return out


def with_overrides(
    config: GateConfig,
    *,
    loader_modules: list[str] | None = None,
    exclude: list[str] | None = None,
    select: list[str] | None = None,
    extend_select: list[str] | None = None,
    ignore: list[str] | None = None,
    default_excludes: bool | None = None,
) -> GateConfig:
    """*config* with the command line's settings: ``loader_modules`` and ``exclude`` are added
    (paths relative to the cwd), ``select`` replaces, ``extend_select`` and ``ignore`` add;
    ``default_excludes`` (``--no-default-excludes``) replaces when given."""
    changes: dict[str, Any] = {}
    if default_excludes is not None:
        changes["default_excludes"] = default_excludes
    if loader_modules:
        given = tuple(_root_relative(m, config.root) for m in loader_modules)
        check_loader_modules(config.root, given, "--loader-module")
        changes["loader_modules"] = config.loader_modules + given
    if exclude:
        changes["exclude"] = config.exclude + tuple(_root_relative(e, config.root) for e in exclude)
    selected = check_rule_ids(select, "--select") if select else config.select
    if extend_select:
        selected = selected | check_rule_ids(extend_select, "--extend-select")
    changes["select"] = selected
    if ignore:
        changes["disable"] = config.disable | check_rule_ids(ignore, "--ignore")
    return replace(config, **changes)


def _root_relative(entry: str, root: Path) -> str:
    """A path given on the command line (relative to the cwd) as the config root sees it."""
    if "/" not in entry and not entry.endswith(".py") and not Path(entry).exists():
        return entry  # a dotted module name or a glob pattern
    full = Path.cwd() / entry
    try:
        return full.resolve().relative_to(root).as_posix()
    except ValueError:
        return entry


def _matches(rel: str, pattern: str) -> bool:
    stem = pattern.rstrip("/")
    return rel == stem or rel.startswith(stem + "/") or fnmatch.fnmatchcase(rel, pattern)


def check_rule_ids(ids: tuple[str, ...] | list[str], where: str) -> frozenset[str]:
    """*ids* as a set, or a ConfigError naming the unknown ones."""
    bad = [r for r in ids if r not in RULES_BY_ID]
    if bad:
        raise ConfigError(f"{where} names unknown rule(s) {', '.join(bad)}; known: {', '.join(RULES_BY_ID)}")
    return frozenset(ids)


def check_loader_modules(root: Path, entries: tuple[str, ...], where: str) -> None:
    """Every loader module must exist: a misspelt one would exempt nothing and flag the loader itself."""
    for entry in entries:
        if "/" in entry or entry.endswith(".py"):
            candidates = [root / entry]
        else:
            dotted = entry.replace(".", "/")
            candidates = [root / base / f"{dotted}{ext}" for base in (".", "src") for ext in (".py", "")]
        if not any(c.exists() for c in candidates):
            raise MissingFileError(
                f"{where}: loader module {entry!r} does not exist under {root}; give a file or folder "
                "path relative to the pyproject (e.g. src/mylab/load.py) or a dotted name found there"
            )


def _table(table: dict[str, object], key: str, where: str) -> dict[str, object]:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: [tool.cleanroom.gates] {key} must be a table, got {value!r}; "
            f'write e.g. [tool.cleanroom.gates.{key}] then "scripts/*" = ["CR101"]'
        )
    return value


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


def _bool(table: dict[str, object], key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(
            f"{where}: [tool.cleanroom.gates] {key} must be true or false, got {value!r}; "
            f"write e.g. {key} = {str(not default).lower()}"
        )
    return value


def load_config(pyproject: str | Path | None = None, *, start: str | Path | None = None) -> GateConfig:
    """Read ``[tool.cleanroom.gates]`` from *pyproject* (or :func:`find_config` above *start* / the cwd).

    Without a table found, the defaults apply: scan ``.``, no loader module, every rule on; the root is
    the nearest pyproject's folder (else *start*), and ``searched_from`` records where the search began.
    """
    if pyproject is None:
        base = Path(start) if start is not None else Path.cwd()
        found = find_config(base)
        if found is None:
            nearest = find_pyproject(base)
            root = nearest.parent if nearest is not None else base.resolve()
            return GateConfig(root=root, searched_from=str(base.resolve()))
        pyproject = found
    path = Path(pyproject)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such pyproject.toml; pass --config PATH to an existing file")
    data = read_toml(path)
    root = path.resolve().parent
    table = gates_table(data, path)
    if table is None:
        return GateConfig(root=root, source=str(path))
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)} in [tool.cleanroom.gates]; allowed: {', '.join(_KEYS)}"
        )
    where = f"{path}: [tool.cleanroom.gates]"
    disable = check_rule_ids(_string_list(table, "disable", str(path)), f"{where} disable")
    select = check_rule_ids(_string_list(table, "select", str(path)), f"{where} select") or DEFAULT_RULES
    per_path = _per_path_ignores(table, path)
    helpers = _helpers(table, path)
    loader_modules = _string_list(table, "loader_modules", str(path))
    check_loader_modules(root, loader_modules, str(path))
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
        default_excludes=_bool(table, "default_excludes", True, str(path)),
        loader_modules=loader_modules,
        disable=disable,
        source=str(path),
        select=select,
        per_path_ignores=per_path,
        helpers=helpers,
    )


def _per_path_ignores(table: dict[str, object], path: Path) -> tuple[tuple[str, frozenset[str]], ...]:
    """``per_path_ignores``: glob pattern -> the rule ids ignored under it, each id checked."""
    where = f"{path}: [tool.cleanroom.gates]"
    per_path: list[tuple[str, frozenset[str]]] = []
    for pattern, rules in _table(table, "per_path_ignores", str(path)).items():
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise ConfigError(
                f'{where} per_path_ignores["{pattern}"] must be a list of rule ids, got {rules!r}'
            )
        per_path.append((pattern, check_rule_ids(rules, f'{where} per_path_ignores["{pattern}"]')))
    return tuple(per_path)


def _helpers(table: dict[str, object], path: Path) -> tuple[tuple[str, str], ...]:
    """``helpers``: qualified function name -> the one rule it breaks inside, the id checked."""
    where = f"{path}: [tool.cleanroom.gates]"
    helpers: list[tuple[str, str]] = []
    for name, rule in _table(table, "helpers", str(path)).items():
        if not isinstance(rule, str) or "." not in name:
            raise ConfigError(
                f'{where} helpers["{name}"] must map a qualified name (package.function) to one rule id, got {rule!r}'
            )
        helpers.append((name, next(iter(check_rule_ids([rule], f'{where} helpers["{name}"]')))))
    return tuple(helpers)

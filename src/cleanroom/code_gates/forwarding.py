"""Forwarding loaders: a repository's own wrapper that passes its ``**kwargs`` into a load.

verl's ``hf_tokenizer(name_or_path, **kwargs)`` ends in ``AutoTokenizer.from_pretrained(name_or_path,
**kwargs)``: the load inside is CR101, but the switch that matters arrives at the *caller*,
``hf_tokenizer(path, trust_remote_code=trust_remote_code)``, where no load is visible. A module-level
``def`` whose ``**kwargs`` parameter (any name) is spread unchanged into a call the gates judge a model
or tokenizer load (a loading class's ``from_pretrained``, ``transformers.pipeline``, a listed CR101 helper
such as ``vllm.LLM``) is a *forwarding loader*; a call to it passing ``trust_remote_code=`` anything but
a literal ``False``/``None`` is judged as that load's switch (CR501).

Narrow on purpose (no new false alarm on public code): a wrapper with its own ``trust_remote_code``
parameter (the value never reaches ``**kwargs``) or whose body names the string ``"trust_remote_code"``
(``kwargs.pop(...)``, ``kwargs["trust_remote_code"] = False``) forwards nothing, and so does one that rebinds the
name before the load (``kwargs = {"revision": r}``, in a statement every path to the load runs) or whose load
takes its own ``trust_remote_code=`` beside ``**kwargs`` (a caller's key would be a TypeError); a receiver the import
table cannot name (``cls.from_pretrained(**kw)``) is not a load here. A method is followed only within its
module, from ``self.``/``cls.`` calls in the class that defines it (:class:`MethodForwarders`); a nested function,
lambda or comprehension that rebinds the spread's name spreads its own value, and a parameter or comprehension
target named like a wrapper where the call stands is not the wrapper.

The runner collects the wrappers of every file in one pass before judging calls (:class:`ForwarderTable`),
keyed by qualified name (``verl.utils.tokenizer.hf_tokenizer``, the module's dotted name taken from its
``__init__.py`` chain), plus one hop of a package ``__init__`` re-export (``verl.utils.hf_tokenizer``). A
call resolves through the caller's import table (relative imports against the caller's package) or, for a
bare name, to the caller's own module. A file's findings then depend on its bytes *and* the table entries
it can name: :meth:`ForwarderTable.reach` gives those (an entry is relevant when its last name occurs
in the bytes, which any spelling of a call to it must contain), and the runner adds them to the cache key.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cleanroom.code_gates.cache import ResultCache
from cleanroom.code_gates.names import Names, const_str, is_const, keywords, shown
from cleanroom.code_gates.scopes import EXPRESSION_SCOPES, Scopes, own_names
from cleanroom.code_gates.violation import Report
from cleanroom.code_gates.vocabulary import LOADER_DECIDES, PIPELINES, helper_rule, is_loading_class
from cleanroom.code_gates.walk import collect, runs_before


@dataclass(frozen=True, order=True)
class Forwarder:
    """A wrapper that forwards ``**kwargs`` into a load: its name, where the load stands, what it loads."""

    name: str
    path: str
    line: int
    target: str

    def describe(self) -> str:
        return f"forwarded by {self.name} ({self.path}:{self.line}) to {self.target}"


def module_name(file: Path) -> str:
    """The dotted module name of *file*: its stem under every enclosing folder that has an ``__init__.py``."""
    parts = [] if file.name == "__init__.py" else [file.stem]
    folder = file.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.append(folder.name)
        folder = folder.parent
    return ".".join(reversed(parts)) or file.stem


def package_of(module: str, is_package: bool) -> str:
    """The package a relative import in *module* starts from."""
    return module if is_package else module.rpartition(".")[0]


def absolute(qual: str, package: str) -> str:
    """``..x.f`` read in *package* as an absolute dotted name (unchanged when not relative)."""
    level = len(qual) - len(qual.lstrip("."))
    if not level:
        return qual
    base = package.split(".") if package else []
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, qual[level:]]) if qual[level:] else ".".join(base)


def load_target(call: ast.Call, names: Names, helpers: Mapping[str, str]) -> str | None:
    """What *call* loads, as the message names it, when the gates judge it a model or tokenizer load."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "from_pretrained":
        qual = names.resolve(func.value)
        if qual is not None and is_loading_class(qual):
            return f"{qual.rsplit('.', 1)[-1]}.from_pretrained"
        return None
    qual = names.resolve(func)
    if qual is None:
        return None
    if qual in PIPELINES:
        return qual
    if qual.endswith(".from_pretrained") and is_loading_class(qual[: -len(".from_pretrained")]):
        return qual.rsplit(".", 2)[-2] + ".from_pretrained"
    helper = helper_rule(qual, dict(helpers))
    return qual if helper is not None and helper[0] == "CR101" else None


def _forwarded_load(fn: ast.FunctionDef | ast.AsyncFunctionDef, names: Names, helpers: Mapping[str, str]) -> tuple[int, str] | None:
    """(line, target) of the first load *fn* spreads its ``**kwargs`` into, or None. A nested function, lambda
    or comprehension that binds the same name spreads its own value, not *fn*'s; so does *fn* after it rebinds the
    name to a value that does not read it (``kw = {"revision": r}``) in a statement that always runs before the
    load. A load given its own ``trust_remote_code=`` beside the spread takes no caller's key (the caller's would
    be a duplicate keyword, a TypeError)."""
    args = fn.args
    if args.kwarg is None:
        return None
    own = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    if "trust_remote_code" in own:
        return None  # the caller's value binds the parameter, never reaches **kwargs
    spread = args.kwarg.arg
    found: tuple[int, str] | None = None
    stack: list[tuple[ast.AST, bool]] = [(stmt, True) for stmt in fn.body]
    while stack:
        node, seen = stack.pop()  # *seen*: *fn*'s ``**kwargs`` is the name visible here
        if const_str(node) == "trust_remote_code":
            return None  # popped, overridden or read from kwargs: not passed through unchanged
        if seen and isinstance(node, ast.Call) and (found is None or node.lineno < found[0]):
            if _spreads(node, spread) and not any(kw.arg == "trust_remote_code" for kw in node.keywords):
                target = load_target(node, names, helpers)
                if target is not None and not runs_before(fn, (node.lineno, node.col_offset), partial(_rebinds, name=spread)):
                    found = (node.lineno, target)
        inner = seen and not (isinstance(node, (*EXPRESSION_SCOPES, *_DEFS)) and spread in own_names(node))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))
    return found


def _spreads(call: ast.Call, name: str) -> bool:
    return any(kw.arg is None and isinstance(kw.value, ast.Name) and kw.value.id == name for kw in call.keywords)


def _rebinds(stmt: ast.stmt, name: str) -> bool:
    """``name = value`` (or annotated) where the value does not read *name*: the spread holds something new."""
    if isinstance(stmt, ast.Assign):
        targets, value = stmt.targets, stmt.value
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        targets, value = [stmt.target], stmt.value
    else:
        return False
    if not any(isinstance(t, ast.Name) and t.id == name for t in targets):
        return False
    return not any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(value))


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


# A file can define a forwarding loader only if its text has a spread and a load's name.
_LOAD_WORDS = (b"from_pretrained", b"pipeline")


def forwarders_in(source: bytes, helpers: Mapping[str, str]) -> list[tuple[str, int, str]]:
    """(function name, load line, target) for each module-level forwarding loader in *source*."""
    words = _LOAD_WORDS + tuple(n.rsplit(".", 1)[-1].encode() for n, r in helpers.items() if r == "CR101")
    if b"**" not in source or not any(w in source for w in words):
        return []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # the checker reports it (CR901)
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.args.kwarg]
    if not defs:
        return []
    names = Names(collect(tree))
    found = []
    for fn in defs:
        load = _forwarded_load(fn, names, helpers)
        if load is not None:
            found.append((fn.name, *load))
    return found


def _reexports(source: bytes, package: str) -> list[tuple[str, str]]:
    """(local name, absolute qualified name) for each ``from M import f [as g]`` at a package's top level."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    out: list[tuple[str, str]] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            module = absolute("." * node.level + (node.module or ""), package)
            out.extend((a.asname or a.name, f"{module}.{a.name}") for a in node.names if a.name != "*")
    return out


class ForwarderTable:
    """Qualified name -> :class:`Forwarder` for the files of one run (see the module docstring)."""

    def __init__(
        self, files: Iterable[tuple[Path, str, bytes]], helpers: Mapping[str, str], cache: ResultCache | None = None
    ) -> None:
        """*files*: (file, display path, bytes) of every module the run checks; *cache*: where each file's
        wrappers are kept by content (a warm run parses nothing here)."""
        self.table: dict[str, Forwarder] = {}
        inits: list[tuple[str, bytes]] = []
        for file, shown_path, source in files:
            module = module_name(file)
            if file.name == "__init__.py":
                inits.append((module, source))
            wrappers = (
                forwarders_in(source, helpers)
                if cache is None
                else cache.facts(cache.key(source), partial(forwarders_in, source, helpers))
            )
            for name, line, target in wrappers:
                self.table[f"{module}.{name}"] = Forwarder(name, shown_path, line, target)
        for package, source in inits:  # one hop: ``from .tokenizer import hf_tokenizer`` in verl/utils
            if not any(f.name.encode() in source for f in self.table.values()):
                continue
            for local, qual in _reexports(source, package):
                held = self.table.get(qual)
                if held is not None:
                    self.table.setdefault(f"{package}.{local}", held)

    def reach(self, file: Path, source: bytes) -> Reach | None:
        """What *file* with these bytes can call: the entries whose last name occurs in them (any spelling
        of a call to one must contain it), or None when there are none."""
        held = {q: f for q, f in self.table.items() if q.rsplit(".", 1)[-1].encode() in source}
        if not held:
            return None
        module = module_name(file)
        return Reach(held, module, package_of(module, file.name == "__init__.py"))


@dataclass(frozen=True)
class Reach:
    """What one module can call of the run's forwarding loaders: the relevant entries, its name and package."""

    forwarders: Mapping[str, Forwarder]
    module: str
    package: str

    def key(self) -> bytes:
        """What the module's findings read besides its bytes, for the cache key (empty when nothing)."""
        if not self.forwarders:
            return b""
        return repr((self.module, self.package, sorted(self.forwarders.items()))).encode()

    def check(self, node: ast.Call, names: Names, scopes: Scopes, add: Report) -> None:
        """CR501 for ``wrapper(..., trust_remote_code=v)`` where *wrapper* forwards ``**kwargs`` into a load. A
        parameter, lambda parameter or comprehension target of that name where the call stands is something else."""
        func = node.func
        qual = names.resolve(func)
        if qual is None and isinstance(func, ast.Name) and func.id in names.bound:
            qual = f"{self.module}.{func.id}"  # a wrapper defined in this module
        held = self.forwarders.get(absolute(qual, self.package)) if qual is not None else None
        if held is None:
            return
        if isinstance(func, ast.Name):  # asked only of a wrapper's name: most calls are not one
            scope, _ = scopes.lookup(func.id, func)
            if scope is not None and scope is not scopes.module and func.id in own_names(scope):
                return
        _report_switch(node, held.name, held, add)


def _report_switch(node: ast.Call, called: str, held: Forwarder, add: Report) -> None:
    """CR501 at each ``trust_remote_code=`` of *node* that may be True: *called* forwards it into *held*'s load."""
    for key, value, where in keywords(node):
        if key == "trust_remote_code" and not is_const(value, False, None):
            literal = is_const(value, True)
            what = "trust_remote_code=True" if literal else "trust_remote_code passed a value that may be True"
            add(where, "CR501", f"{what} to {called}(), {held.describe()}", "" if literal else LOADER_DECIDES)


class MethodForwarders:
    """Methods as forwarding loaders, within one module: ``self.load(p, trust_remote_code=t)`` (or ``cls.``) in a
    class whose own ``def load(self, path, **kw)`` spreads ``**kw`` into a load. Conservative: only ``self.``/``cls.``
    calls, resolved to a method defined in the body of the class that encloses the call (the last ``def`` of
    that name); inherited methods and other receivers are not followed."""

    def __init__(self, path: str, names: Names, scopes: Scopes, helpers: Mapping[str, str]) -> None:
        self.path = path
        self.names = names
        self.scopes = scopes
        self.helpers = helpers
        self._known: dict[int, Forwarder | None] = {}

    def check(self, node: ast.Call, add: Report) -> None:
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("self", "cls")):
            return
        if not any(kw.arg == "trust_remote_code" for kw in node.keywords) and not any(
            kw.arg is None and isinstance(kw.value, ast.Dict) for kw in node.keywords
        ):
            return  # most calls: nothing to carry
        owner = self.scopes.enclosing_class(node.lineno)
        if owner is None:
            return
        method = next(
            (s for s in reversed(owner.body) if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == func.attr),
            None,
        )
        held = self._forwarder(owner, method) if method is not None else None
        if held is not None:
            _report_switch(node, shown(func), held, add)

    def _forwarder(self, owner: ast.ClassDef, method: ast.FunctionDef | ast.AsyncFunctionDef) -> Forwarder | None:
        if id(method) not in self._known:
            load = _forwarded_load(method, self.names, self.helpers)
            self._known[id(method)] = (
                None if load is None else Forwarder(f"{owner.name}.{method.name}", self.path, load[0], load[1])
            )
        return self._known[id(method)]


__all__ = [
    "Forwarder",
    "ForwarderTable",
    "MethodForwarders",
    "Reach",
    "absolute",
    "load_target",
    "module_name",
    "package_of",
]

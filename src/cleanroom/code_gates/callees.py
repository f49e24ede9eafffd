"""What a callee does with a dict handed to it, for the dict rule (:mod:`cleanroom.code_gates.switches`): a callee
that only records its arguments (:func:`records_only`), or a function this module defines (:class:`LocalCallees`:
its ``def`` statements, and which of its parameters pass their value on).
"""

from __future__ import annotations

import ast

from cleanroom.code_gates.names import Names, dotted_name
from cleanroom.code_gates.scopes import Function, Scopes

_RECORD_FUNCTIONS = frozenset(
    {"print", "str", "repr", "format", "len", "bool", "hash", "id", "type", "isinstance", "vars", "dict"}
    | {"sorted", "list", "tuple", "set", "frozenset", "iter", "enumerate", "zip", "reversed", "any", "all"}
)
_RECORD_MODULES = frozenset({"json", "yaml", "pickle", "pprint", "logging", "warnings", "copy", "wandb", "mlflow"})
_RECORD_METHODS = frozenset(
    {"append", "appendleft", "extend", "insert", "add", "write", "writelines", "dump", "dumps", "pprint"}
    | {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
)
#: What a call of a local function passes on (:meth:`LocalCallees.params`): positional parameters as a call fills
#: them, the parameters that pass their value on, the named parameters, the ``*args`` and ``**kwargs`` names.
Params = tuple[list[str], set[str], set[str], str | None, str | None]


def records_only(func: ast.AST, names: Names) -> bool:
    """The callee *func* only reads or records its arguments (``print``, ``str``, ``sorted``, ``json.dump``,
    ``logging``/``logger.info``, ``rows.append``): a dict handed to it is not passed on. Any other may spread it."""
    qual = names.resolve(func)
    if qual is not None:
        return qual.split(".", 1)[0] in _RECORD_MODULES
    if isinstance(func, ast.Name):
        return func.id in _RECORD_FUNCTIONS
    if isinstance(func, ast.Attribute):
        receiver = dotted_name(func.value) or ""
        return func.attr in _RECORD_METHODS or receiver.rsplit(".", 1)[-1] in ("logger", "logging", "log")
    return False


def callee_name(func: ast.AST) -> str | None:
    """The name under which :meth:`LocalCallees.defs` may find *func*'s ``def``: ``f``, or ``f`` of ``self.f``/
    ``cls.f``; None for any other callee."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("self", "cls"):
        return func.attr
    return None


class LocalCallees:
    """The functions of one module a call may reach, and what each does with its parameters (cached)."""

    def __init__(self, scopes: Scopes, nodes: dict[type, list], names: Names) -> None:
        self.scopes = scopes
        self.nodes = nodes
        self.names = names
        self._defined: dict[str, list[Function]] | None = None
        self._params: dict[int, Params] = {}

    def defs(self, func: ast.AST) -> list[tuple[Function, bool]]:
        """For a call of a function this module defines (``f``, or ``self.f``/``cls.f`` with ``f`` a method of the
        enclosing class): each ``def`` of that name, and whether a call binds its first parameter; else empty."""
        if isinstance(func, ast.Name) and func.id not in self.names.table:
            return [(fn, False) for fn in self._definitions().get(func.id, ())]
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("self", "cls"):
            owner = self.scopes.enclosing_class(func.lineno)
            methods = owner.body if owner is not None else ()
            return [(m, not _static(m)) for m in methods if isinstance(m, Function) and m.name == func.attr]
        return []

    def _definitions(self) -> dict[str, list[Function]]:
        """Function name -> every ``def`` of that name in the module that a bare-name call can reach: not a
        class's method, which is called through an instance (computed once)."""
        if self._defined is None:
            self._defined = {}
            methods = {id(s) for c in self.nodes.get(ast.ClassDef, ()) for s in c.body}
            for fn in self.scopes.functions():
                if id(fn) not in methods:
                    self._defined.setdefault(fn.name, []).append(fn)
        return self._defined

    def params(self, fn: Function, bound: bool) -> Params:
        """(positional parameters as a call fills them, without ``self`` when *bound*; the parameters that pass
        their value on; the named parameters; the ``*args`` and ``**kwargs`` names). A parameter passes its value
        on unless every use of it is an argument of a callee that only records (:func:`records_only`): spread, handed
        to a load or to an unknown callee, passed by name, or read in any other way, it may reach a load."""
        known = self._params.get(id(fn))
        if known is None:
            a = fn.args
            positional = [x.arg for x in (*a.posonlyargs, *a.args)]
            rest, extra = (a.vararg.arg if a.vararg else None), (a.kwarg.arg if a.kwarg else None)
            named = {*positional, *(x.arg for x in a.kwonlyargs)}
            recorded = {
                id(v)
                for node in ast.walk(fn)
                if isinstance(node, ast.Call) and records_only(node.func, self.names)
                for v in (*node.args, *(kw.value for kw in node.keywords))
            }
            passing = {
                node.id
                for node in ast.walk(fn)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and id(node) not in recorded
            } & (named | {rest, extra} - {None})
            known = self._params[id(fn)] = (positional, passing, named, rest, extra)
        return (known[0][1:] if bound else known[0]), *known[1:]


def _static(fn: Function) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)


__all__ = ["LocalCallees", "Params", "callee_name", "records_only"]

"""The module's import table: which imported name a local name, an attribute chain or a call refers to.

Flow-insensitive (see :mod:`cleanroom.code_gates.checker`): every import and every assignment in the
module counts, functions included. Reflective access (``getattr``/``setattr``/``delattr`` by any
name, the dunder methods, ``importlib.import_module``) resolves here too, so the rules see one
qualified name whatever the spelling.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

# Reflective attribute access: the builtins (by any name bound to them) and the dunder methods.
_REFLECT_BUILTINS = {"getattr": "get", "setattr": "set", "delattr": "del"}
_REFLECT_DUNDERS = {
    "__getattribute__": "get",
    "__getattr__": "get",
    "__setattr__": "set",
    "__delattr__": "del",
}


def const_str(node: ast.AST) -> str | None:
    """The value of a string literal, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def is_const(node: ast.AST, *values: object) -> bool:
    """*node* is a literal identical to one of *values* (``True``, ``False``, ``None``)."""
    return isinstance(node, ast.Constant) and any(node.value is v for v in values)


class Names:
    """The module's import table: local name (or dotted ``self.attr``) → qualified dotted name."""

    def __init__(self, nodes: dict[type, list]) -> None:
        self.table: dict[str, str] = {}
        self.star: str | None = None
        for node in nodes.get(ast.Import, ()):
            for alias in node.names:
                if alias.asname:
                    self.table[alias.asname] = alias.name
                else:
                    root = alias.name.split(".", 1)[0]
                    self.table[root] = root
        for node in nodes.get(ast.ImportFrom, ()):
            # A relative import keeps its dots (``.hf.AutoTokenizer``): never equal to a library's
            # qualified name, but a re-exported class keeps its class name.
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if alias.name == "*":
                    self.star = self.star or module
                else:
                    sep = "." if node.module else ""
                    self.table[alias.asname or alias.name] = f"{module}{sep}{alias.name}"
        self.bound = {
            n.name for t in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef) for n in nodes.get(t, ())
        }
        pairs = _bindings(nodes)
        self.dotted = False  # whether a dotted target (``self.cls = ...``) is bound: only then look one up
        # Rounds resolve chains such as ``tf = transformers; M = tf.AutoModel`` in any order.
        for _ in range(3):
            changed = False
            for key, value in pairs:
                qual = self.resolve(value)
                if qual is not None and self.table.get(key) != qual:
                    self.table[key] = qual
                    self.dotted = self.dotted or "." in key
                    changed = True
            if not changed:
                break

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted name *node* refers to, or None when it is not an imported name."""
        if isinstance(node, ast.Name):
            qual = self.table.get(node.id)
            if qual is None and self.star is not None and node.id not in self.bound:
                return f"{self.star}.{node.id}"
            return qual
        if isinstance(node, ast.Attribute):
            if self.dotted:
                key = dotted_name(node)
                if key is not None and key in self.table:
                    return self.table[key]
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base is not None else None
        if isinstance(node, ast.IfExp):  # ``A if c else B``: either class may be the one loaded
            return self.resolve(node.body) or self.resolve(node.orelse)
        if isinstance(node, ast.Call) and node.args:
            return self._resolve_call(node)
        return None

    def _resolve_call(self, node: ast.Call) -> str | None:
        """:meth:`resolve` for a call with arguments. The callee is resolved once (a chain ``a.get(k, d).get(k, d)``
        resolving it once per question would take time doubling with each link)."""
        func = node.func
        qual = self.resolve(func)
        access = _reflected(node, qual)
        if access is None and len(node.args) >= 2 and _dynamic_getattr(func, qual):
            base = self.resolve(node.args[0])  # ``getattr(transformers, name)``: some member
            return f"{base}.*" if base is not None else None
        if access is not None:
            base = self.resolve(node.args[0]) if access[0] == "get" and access[2] == 1 else None
            return f"{base}.{access[1]}" if base is not None else None
        if (isinstance(func, ast.Name) and func.id == "__import__") or qual == "importlib.import_module":
            return const_str(node.args[0])
        return None


def shown(node: ast.AST) -> str:
    """*node* as source for a message; ``<expression>`` where it is nested too deep to unparse (Python compiles
    expressions hundreds of levels deeper than ``ast.unparse`` can recurse)."""
    try:
        return ast.unparse(node)
    except RecursionError:
        return "<expression>"


def dotted_name(node: ast.AST) -> str | None:
    """``"a.b.c"`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _bindings(nodes: dict[type, list]) -> list[tuple[str, ast.AST]]:
    """(target, value) for every binding that can alias an imported name.

    Plain, chained, annotated and walrus assignments; tuple targets are paired with a tuple value
    of the same length element by element; a target may be a name or a dotted ``self.attr``.
    Class-body assignments also bind ``self.NAME``, ``cls.NAME`` and ``Class.NAME``.
    """
    pairs: list[tuple[str, ast.AST]] = []
    for node in nodes.get(ast.Assign, ()):
        for target in node.targets:
            _pair(target, node.value, pairs)
    for node in (*nodes.get(ast.AnnAssign, ()), *nodes.get(ast.NamedExpr, ())):
        if node.value is not None:
            _pair(node.target, node.value, pairs)
    for cls in nodes.get(ast.ClassDef, ()):
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                targets, value = [stmt.target], stmt.value
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Name):
                    pairs.extend((f"{owner}.{target.id}", value) for owner in ("self", "cls", cls.name))
    return pairs


def _pair(target: ast.AST, value: ast.AST, pairs: list[tuple[str, ast.AST]]) -> None:
    """Append (dotted target, value) to *pairs* for each target that is paired with a known value."""
    pairs.extend((key, v) for key, v in bound_pairs(target, value) if v is not None)


def bound_pairs(target: ast.AST, value: ast.AST | None) -> Iterator[tuple[str, ast.AST | None]]:
    """(dotted target, value) for one binding: a tuple or list target is paired element by element
    with a tuple or list value of the same length (no starred value); any other element, and a
    starred target, is bound to None (whatever the value unpacks to)."""
    if isinstance(target, ast.Starred):
        yield from bound_pairs(target.value, None)
        return
    if isinstance(target, (ast.Tuple, ast.List)):
        paired = (
            isinstance(value, (ast.Tuple, ast.List))
            and len(value.elts) == len(target.elts)
            and not any(isinstance(e, ast.Starred) for e in value.elts)
        )
        for i, element in enumerate(target.elts):
            yield from bound_pairs(element, value.elts[i] if paired else None)  # type: ignore[union-attr]
        return
    key = dotted_name(target)
    if key is not None:
        yield key, value


def reflective(node: ast.AST, names: Names) -> tuple[str, str, int] | None:
    """``(kind, attribute, index)`` for reflective attribute access with a literal attribute name.

    *kind* is ``"get"``, ``"set"`` or ``"del"``; *index* is where the name stands in the arguments
    (1 for ``setattr(obj, "x", v)`` and ``object.__setattr__(obj, "x", v)``, 0 for the bound
    ``obj.__setattr__("x", v)``). The builtins count by any name bound to them (``builtins.setattr``).
    """
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    alias = isinstance(func, ast.Name) and func.id not in _REFLECT_BUILTINS
    alias = alias or (isinstance(func, ast.Attribute) and func.attr in _REFLECT_BUILTINS)
    return _reflected(node, names.resolve(func) if alias else None)


def _reflected(node: ast.Call, qual: str | None) -> tuple[str, str, int] | None:
    """:func:`reflective` for a call with arguments whose callee resolves to *qual* (looked up by the caller)."""
    func = node.func
    kind: str | None = None
    index = 1
    if isinstance(func, ast.Name):
        kind = _REFLECT_BUILTINS.get(func.id) or _builtin_alias(qual)
    elif isinstance(func, ast.Attribute):
        kind = _REFLECT_DUNDERS.get(func.attr)
        if kind is not None:
            index = 0 if const_str(node.args[0]) is not None else 1
        elif func.attr in _REFLECT_BUILTINS:
            kind = _builtin_alias(qual)
    if kind is None or len(node.args) <= index:
        return None
    attr = const_str(node.args[index])
    return (kind, attr, index) if attr is not None else None


def _dynamic_getattr(func: ast.AST, qual: str | None) -> bool:
    """``getattr(obj, <not a literal>)`` by any name bound to the builtin: *func* resolves to *qual*."""
    return (isinstance(func, ast.Name) and func.id == "getattr") or _builtin_alias(qual) == "get"


def _builtin_alias(qual: str | None) -> str | None:
    """The reflective kind of ``builtins.setattr`` and friends reached by another name."""
    if qual is None or not qual.startswith("builtins."):
        return None
    return _REFLECT_BUILTINS.get(qual[len("builtins.") :])


def attr_name(node: ast.AST, names: Names) -> str | None:
    """The attribute *node* reads: ``obj.x`` and ``getattr(obj, "x")`` both give ``"x"``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    access = reflective(node, names)
    return access[1] if access is not None and access[0] == "get" else None


def keywords(call: ast.Call) -> Iterator[tuple[str, ast.AST, ast.AST]]:
    """(name, value, node for the position) for ``k=v`` and for ``**{"k": v}`` literal keys.

    ``**dict(k=v)`` needs no special case: the inner ``dict(...)`` call is checked on its own.
    """
    for kw in call.keywords:
        if kw.arg is not None:
            yield kw.arg, kw.value, kw
        elif isinstance(kw.value, ast.Dict):
            yield from dict_items(kw.value)


def dict_items(node: ast.AST) -> Iterator[tuple[str, ast.AST, ast.AST]]:
    """(key, value, node for the position) for the literal keys of a dict literal or a ``dict(k=v)`` call."""
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            name = const_str(key) if key is not None else None
            if name is not None:
                yield name, value, key  # type: ignore[misc]
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        for kw in node.keywords:
            if kw.arg is not None:
                yield kw.arg, kw.value, kw

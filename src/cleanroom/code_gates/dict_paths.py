"""Where a dict that may carry ``trust_remote_code`` is written, copied and emptied: the syntax the dict rule
(:mod:`cleanroom.code_gates.switches`) traces.

A dict is named by a *path*: a dotted name (``kw``, ``self.kw``, ``cfg.model_kwargs``) and the string keys that
index it (``cfg["model"]`` is ``("cfg", ("model",))``). A dict at a path is part of every dict whose path is a
prefix by keys (``cfg["model"]`` is inside ``cfg``), so passing ``cfg`` on passes ``cfg["model"]`` on; an attribute
is not (``self.cfg.model_kwargs`` is its own dict, not a part of ``self.cfg``). A subscript by anything but a string
literal, or an attribute of a subscript (``cfg["m"].kw``), names no path: such a dict is not traced (a key read out
of a merge or a copy, ``(a | b)["m"]``, is the dict under that key of each path it is built from: :func:`copied`). A key given as
a name is that literal where the rule resolves it (:func:`named_keys`: the dict rule resolves a name its scope binds
once, to a string literal: ``MODEL_KWARGS = "model_kwargs"``, then ``cfg[MODEL_KWARGS]``); any other name is unknown.

A key read by ``.get`` or ``.setdefault`` is the same path as by a subscript: ``cfg.get("model")``, ``cfg.get("model",
{})`` and ``cfg.setdefault("model", {})`` name ``cfg["model"]`` (a call on ``self``/``cls`` is a method, not a read);
``setdefault`` also stores its default there, and the dict it returns is the one there (:func:`stores`). A dict *merged* into another (:func:`merged`: a
literal's ``**`` entry, an operand of ``a | b``, the default of a ``.get`` read) is part of the dict the expression
builds, and ``b |= a`` merges into ``b`` as ``b.update(a)`` does (:func:`stores`).

A dict literal nested in another under a string key (``{"model": {"trust_remote_code": t}}``) lies at that key's
path under the outer literal, and one merged into an expression, or passed through one unchanged (a branch of ``a if c
else b``, an operand of ``a or b``, copied by ``dict(a)``, ``a.copy()``, ``copy.deepcopy(a)``), lies where that
expression does (:func:`nesting`).
A key removed from a dict (``del cfg["model"]``, ``cfg.pop("model")``) removes the path ``cfg["model"]`` and every
path under it (:func:`removals`).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from cleanroom.code_gates.names import bound_pairs, const_str, dict_items, dotted_name, is_const
from cleanroom.code_gates.scopes import Scopes

KEY = "trust_remote_code"
#: A dotted name and the string keys that index it: ``cfg["model"]`` is ``("cfg", ("model",))``.
Path = tuple[str, tuple[str, ...]]
#: (source, copy, where): the dict *source* (a path, a call's result, or a dict literal merged in) copied into the
#: dict at the path *copy*, by the statement or call *where*.
Copy = tuple[ast.AST, ast.AST, ast.AST]
#: Keys shown whole in a message; a longer path shows its first two and its last (``cfg["a"]["b"]…["z"]``).
_SHOWN_KEYS = 4


#: What the name in a key stands for, while a rule resolves them (:func:`named_keys`); None: a name is no key.
_NAMED: ContextVar[Callable[[ast.Name], str | None] | None] = ContextVar("named_keys", default=None)


@contextmanager
def named_keys(resolve: Callable[[ast.Name], str | None]) -> Iterator[None]:
    """While the block runs, a key given as a name (``cfg[KEY]``, ``cfg.get(KEY)``, ``cfg.pop(KEY)``) is the string
    *resolve* gives for it (None: unknown, no path), in every function here."""
    token = _NAMED.set(resolve)
    try:
        yield
    finally:
        _NAMED.reset(token)


def key_of(index: ast.AST) -> str | None:
    """The string key *index* gives: a string literal, or a name :func:`named_keys` resolves; else None."""
    key = const_str(index)
    if key is None and isinstance(index, ast.Name):
        resolve = _NAMED.get()
        return None if resolve is None else resolve(index)
    return key


class ConstantKeys:
    """The resolver the dict rule gives :func:`named_keys`: the string a name stands for as a key, the one string
    literal its scope binds it to where that is its only binding there (``MODEL_KWARGS = "model_kwargs"`` at module
    level, ``key = "m"`` in the function; not a parameter, a name bound twice or augmented); else None (unknown).
    Asked only of a name standing as a key, once per name."""

    def __init__(self, scopes: Scopes, nodes: dict[type, list]) -> None:
        self.scopes = scopes
        self.nodes = nodes
        self._augmented: set[int] | None = None
        self._known: dict[int, str | None] = {}
        self._literal: set[str] | None = None

    def __call__(self, name: ast.Name) -> str | None:
        if self._literal is None:
            self._literal = {
                n for t in (ast.Assign, ast.AnnAssign, ast.NamedExpr) for a in self.nodes.get(t, ())
                for target in getattr(a, "targets", None) or [a.target]
                for n, v in bound_pairs(target, a.value) if v is not None and const_str(v) is not None
            }
        if name.id not in self._literal:
            return None
        if id(name) not in self._known:
            held = self.scopes.values(name.id, name)
            key = const_str(held[0]) if len(held) == 1 and held[0] is not None else None
            if key is not None and self._augmented is None:
                self._augmented = {id(a.value) for a in self.nodes.get(ast.AugAssign, ())}
            self._known[id(name)] = None if key is None or id(held[0]) in (self._augmented or ()) else key
        return self._known[id(name)]


def dict_path(node: ast.AST) -> Path | None:
    """The path *node* names (see the module docstring), or None."""
    keys: list[str] = []
    while True:
        if isinstance(node, ast.Subscript):
            index, inner = node.slice, node.value
        elif isinstance(node, ast.Call) and _is_read(node):
            index, inner = node.args[0], node.func.value  # type: ignore[attr-defined]
        else:
            break
        key = key_of(index)
        if key is None:
            return None
        keys.append(key)
        node = inner
    dotted = dotted_name(node)
    return None if dotted is None else (dotted, tuple(reversed(keys)))


#: The methods that read a key out of a dict: ``X.get(key, default)``, and ``X.setdefault(key, default)``, which also
#: stores its default at ``X[key]`` (:func:`stores`).
_READS = ("get", "setdefault")


def _is_read(node: ast.AST) -> bool:
    """``X.get(key)``, ``X.get(key, default)`` or ``X.setdefault(key, default)``, X not ``self``/``cls`` (there the
    method is the class's own)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _READS):
        return False
    receiver = node.func.value
    own = isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")
    return 1 <= len(node.args) <= 2 and not node.keywords and not own


def merged(value: ast.AST) -> list[ast.AST]:
    """The dicts merged into the one *value* builds: each ``**`` entry of a literal, both operands of ``a | b`` (the
    right one wins a clash, as a later ``**`` entry does: ``a | b`` is ``{**a, **b}``), and the default of a ``.get``
    read of a path (the result is the dict at the path or the default); empty for anything else."""
    if isinstance(value, ast.Dict):
        return [v for k, v in zip(value.keys, value.values, strict=True) if k is None]
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.BitOr):
        return [value.left, value.right]
    if isinstance(value, ast.Call) and len(value.args) == 2 and _is_read(value) and dict_path(value) is not None:
        return [value.args[1]]
    return []


def prefixes(path: Path) -> list[Path]:
    """*path* and every dict that holds it, by keys: ``cfg["a"]["b"]``, ``cfg["a"]``, ``cfg``."""
    dotted, keys = path
    return [(dotted, keys[:i]) for i in range(len(keys), -1, -1)]


def path_text(dotted: str, keys: tuple[str, ...]) -> str:
    """``cfg["model"]`` for a message: each key a JSON string (a newline in a key stays on the line), and a path of
    more than four keys cut in the middle (``cfg["k0"]["k1"]…["k149"]``)."""
    shown = [f"[{json.dumps(k)}]" for k in (keys if len(keys) <= _SHOWN_KEYS else (*keys[:2], keys[-1]))]
    if len(keys) > _SHOWN_KEYS:
        shown.insert(2, "…")
    return dotted + "".join(shown)


def nesting(nodes: dict[type, list]) -> dict[int, tuple[ast.AST, str | None]]:
    """id of a dict literal -> (the dict literal it is a value of, under that string key); id of a dict merged into
    an expression (:func:`merged`), or passed through one unchanged (``a if c else b``, ``a or b``, ``dict(a)``,
    ``a.copy()``, ``copy.deepcopy(a)``) -> (that expression, None): it lies at the expression's own path."""
    found: dict[int, tuple[ast.AST, str | None]] = {}
    for node in nodes.get(ast.Dict, ()):
        for name, value, _ in dict_items(node):
            if isinstance(value, ast.Dict):
                found[id(value)] = (node, name)
    merges = [
        *nodes.get(ast.Dict, ()),
        *(b for b in nodes.get(ast.BinOp, ()) if isinstance(b.op, ast.BitOr)),
        *(c for c in nodes.get(ast.Call, ()) if len(c.args) == 2 and getattr(c.func, "attr", None) in _READS),
    ]
    merges += [*nodes.get(ast.IfExp, ()), *nodes.get(ast.BoolOp, ()), *nodes.get(ast.Call, ())]
    for node in merges:
        for part in (*merged(node), *_passed_through(node)):
            found[id(part)] = (node, None)
    return found


def _passed_through(node: ast.AST) -> list[ast.expr]:
    """What *node*'s value is one of, or a copy of: ``a if c else b``, ``a or b``, ``a and b``, and a copy
    (:func:`_copy_of`): a dict literal there lies where *node* does."""
    if isinstance(node, ast.IfExp):
        return [node.body, node.orelse]
    if isinstance(node, ast.BoolOp):
        return list(node.values)
    return (_copy_of(node) or []) if isinstance(node, ast.Call) else []


def _copy_of(call: ast.Call) -> list[ast.expr] | None:
    """The dict *call* copies (``a.copy()``, ``dict(a, ...)``, ``copy.copy(a)``, ``copy.deepcopy(a)``: ``[a]``; ``dict()``:
    none), or None where *call* is no copy."""
    func = call.func
    last = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    if isinstance(func, ast.Attribute) and last == "copy" and not call.args:
        return [func.value]
    return call.args[:1] if last in ("dict", "copy", "deepcopy") else None


def outermost(node: ast.AST, parents: dict[int, tuple[ast.AST, str | None]]) -> tuple[ast.AST, tuple[str, ...]]:
    """The outermost expression *node* is nested or merged in (itself if none), and *node*'s keys under it."""
    keys: list[str] = []
    while id(node) in parents:
        node, key = parents[id(node)]
        if key is not None:
            keys.append(key)
    return node, tuple(reversed(keys))


def copied(value: ast.AST) -> list[ast.AST]:
    """The dicts *value* is or copies: a path (``a``, ``a["m"]``, ``a.get("m")``, ``dict(a, ...)``, ``a.copy()``,
    ``copy.deepcopy(a)``), a call's result (``f(...)``: a dict a function of the module may return;
    ``f(...).copy()``), every dict merged into it (:func:`merged`: ``{**a, **f(...)}``, ``a | b``, the default of
    ``a.get("m", b)``), the dict a key is popped from a path as (``a.pop("m")`` is a copy of ``a["m"]``), or read out
    of a merge or copy as (:func:`_read_out`: ``(a | b)["m"]`` is ``a["m"]`` or ``b["m"]``); empty for anything else. A worklist, not recursion: ``a | b | ...`` nests as deep as the source is long."""
    if isinstance(value, ast.Name | ast.Attribute | ast.Subscript):  # most values: a path or nothing, no part
        named = dict_path(value) is not None
        if named or not isinstance(value, ast.Subscript):  # a subscript naming no path may read out of a merge
            return [value] if named else []
    if not isinstance(value, ast.Dict | ast.BinOp | ast.Call | ast.Subscript):
        return []
    found: list[ast.AST] = []
    todo: list[ast.AST] = [value]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Subscript | ast.Call) and _is_read_out(node):
            found.extend(_read_out(node))
            continue
        parts = merged(node)
        if parts:
            todo.extend(reversed(parts))
        if dict_path(node) is not None:
            found.append(node)
            continue
        if not isinstance(node, ast.Call):
            continue
        func, source = node.func, _copy_of(node)
        if source is not None:
            todo.extend(source)
        elif isinstance(func, ast.Attribute) and func.attr == "pop" and node.args and dict_path(func.value) is not None:
            key = key_of(node.args[0])
            found.extend([_keyed(func.value, [key], node)] if key is not None else [])
        else:
            found.append(node)
    return found


def _is_read_out(node: ast.Subscript | ast.Call) -> bool:
    """A key read (a subscript or ``.get``) that names no path: ``(a | b)["m"]``, ``cfg[i]``."""
    return (isinstance(node, ast.Subscript) or _is_read(node)) and dict_path(node) is None


def _read_out(node: ast.Subscript | ast.Call) -> list[ast.AST]:
    """The dicts a key read out of a merge or a copy is (``(a | b)["m"]``, ``{**a, **b}.get("m", d)``,
    ``dict(a)["m"]["n"]``): the dict under those keys of each path the merge is built from (``a["m"]``, ``b["m"]``,
    as :func:`copied` finds them) and each ``.get`` default under the keys read after it; empty for a read of
    anything else or by an unknown key (``f()["m"]``, ``cfg[i]``: not traced)."""
    links: list[tuple[str, ast.AST | None]] = []  # (key, default), outermost read first
    base: ast.AST = node
    while isinstance(base, ast.Subscript) or _is_read(base):
        read = isinstance(base, ast.Call)
        index, inner = (base.args[0], base.func.value) if read else (base.slice, base.value)  # type: ignore[attr-defined]
        key = key_of(index)
        if key is None:
            return []
        links.append((key, base.args[1] if read and len(base.args) == 2 else None))  # type: ignore[attr-defined]
        base = inner
    keys = [key for key, _ in links]
    found = [_keyed(part, keys, node) for part in copied(base) if dict_path(part) is not None]
    for i, (_, default) in enumerate(links):  # a default stands for the dict at its read: the outer keys apply
        parts = copied(default) if default is not None else []
        found.extend(_keyed(part, keys[:i], node) for part in parts if dict_path(part) is not None)
    return found


def _keyed(part: ast.AST, keys: list[str], at: ast.AST) -> ast.AST:
    """``part["k1"]...`` for *keys* given outermost first, placed at *at*."""
    for key in reversed(keys):
        sub = ast.Subscript(value=part, slice=ast.Constant(value=key), ctx=ast.Load())  # type: ignore[arg-type]
        part = ast.copy_location(sub, at)
    return part


def stores(nodes: dict[type, list], calls: list[ast.Call]) -> list[Copy]:
    """(value, the dict at a path it goes into, where) for each ``b = value`` (plain or annotated; ``b["m"] = value``)
    and each merge into a dict at a path, ``b.update(value)`` and ``b |= value`` (both ``b = {**b, **value}``); and
    ``b.setdefault("m", value)``, which stores value at ``b["m"]`` and returns the dict there, so ``m =
    b.setdefault("m", {})`` also goes into ``b["m"]`` (a write into m is one into ``b["m"]``)."""
    found: list[Copy] = []
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        if assign.value is not None:
            targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
            found.extend((assign.value, target, assign) for target in targets if dict_path(target) is not None)
            held = _stored_at(assign.value)  # ``m = b.setdefault("m", {})``: m *is* ``b["m"]``
            if held is not None:
                found.extend((t, held, assign) for t in targets if dict_path(t) is not None)
    for aug in nodes.get(ast.AugAssign, ()):
        if isinstance(aug.op, ast.BitOr) and dict_path(aug.target) is not None:
            found.append((aug.value, aug.target, aug))
    for call in calls:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "update" and dict_path(func.value) is not None:
            found.extend((arg, func.value, call) for arg in call.args)
        elif (at := _stored_at(call)) is not None:  # ``b.setdefault("m", value)`` stores value at ``b["m"]``
            found.append((call, at, call))
    return found


def _stored_at(value: ast.AST | None) -> ast.AST | None:
    """``b["m"]`` for ``b.setdefault("m", default)`` on a path (the dict it returns and may store), else None."""
    if not (isinstance(value, ast.Call) and getattr(value.func, "attr", None) == "setdefault" and len(value.args) == 2):
        return None
    key = key_of(value.args[0]) if dict_path(value) is not None else None
    return None if key is None else _keyed(value.func.value, [key], value)  # type: ignore[attr-defined]


def copies(stored: list[Copy]) -> list[Copy]:
    """Each dict copied into one at a path by a store (:func:`stores`): ``b = a``, ``b = dict(a)``, ``b = a.copy()``,
    ``b = {**a}``, ``b = a | c``, ``b = f(...)``, ``b = a.get("m")``, ``b["m"] = a``, ``b.update(a)``, ``b |= a``."""
    return [(source, target, where) for value, target, where in stored for source in copied(value)]


def written(nodes: dict[type, list], calls: list[ast.Call]) -> list[tuple[ast.AST, ast.AST, ast.AST]]:
    """(position, the dict written into, value) for each ``trust_remote_code`` written into a dict at a path after
    it was built, by a subscript, ``update(trust_remote_code=...)`` or ``setdefault("trust_remote_code", ...)``
    (``update({...})`` is a dict literal merged into it); a literal ``False``/``None`` writes nothing that matters."""
    found: list[tuple[ast.AST, ast.AST, ast.AST]] = []
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and key_of(target.slice) == KEY and assign.value is not None:
                if dict_path(target.value) is not None:
                    found.append((target, target.value, assign.value))
    for call in calls:
        func = call.func
        if not isinstance(func, ast.Attribute) or func.attr not in ("update", "setdefault"):
            continue
        if dict_path(func.value) is None:
            continue
        if func.attr == "update":  # a literal True keyword is the call rules' ``trust_remote_code=True``
            found.extend((kw, func.value, kw.value) for kw in call.keywords if kw.arg == KEY and not is_const(kw.value, True))
        elif len(call.args) == 2 and key_of(call.args[0]) == KEY:
            found.append((call, func.value, call.args[1]))
    return [(where, owner, value) for where, owner, value in found if not is_const(value, False, None)]


def removals(nodes: dict[type, list], calls: list[ast.Call]) -> list[tuple[ast.AST, str, ast.AST]]:
    """(the dict, the key, where) for every ``del OWNER["key"]`` and ``OWNER.pop("key", ...)`` of a string key: the
    path ``OWNER["key"]`` (``trust_remote_code`` itself, or a dict that may hold it) is removed there."""
    found: list[tuple[ast.AST, str, ast.AST]] = []
    for stmt in nodes.get(ast.Delete, ()):
        for target in stmt.targets:
            key = key_of(target.slice) if isinstance(target, ast.Subscript) else None
            if isinstance(target, ast.Subscript) and key is not None:
                found.append((target.value, key, target))
    for call in calls:
        func = call.func
        if not (isinstance(func, ast.Attribute) and func.attr == "pop" and call.args):
            continue  # most calls; a name is resolved only where it stands as a key
        key = key_of(call.args[0])
        if key is not None:
            found.append((func.value, key, call))
    return found


__all__ = [
    "KEY",
    "ConstantKeys",
    "Copy",
    "Path",
    "copied",
    "copies",
    "dict_path",
    "key_of",
    "merged",
    "named_keys",
    "nesting",
    "outermost",
    "path_text",
    "prefixes",
    "removals",
    "stores",
    "written",
]

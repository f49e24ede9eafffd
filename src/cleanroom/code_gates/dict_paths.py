"""Where a dict that may carry ``trust_remote_code`` is written, copied and emptied: the syntax the dict rule
(:mod:`cleanroom.code_gates.switches`) traces.

A dict is named by a *path*: a dotted name (``kw``, ``self.kw``, ``cfg.model_kwargs``) and the string keys that
index it (``cfg["model"]`` is ``("cfg", ("model",))``). A dict at a path is part of every dict whose path is a
prefix by keys (``cfg["model"]`` is inside ``cfg``), so passing ``cfg`` on passes ``cfg["model"]`` on; an attribute
is not (``self.cfg.model_kwargs`` is its own dict, not a part of ``self.cfg``). A subscript by anything but a string
literal, or an attribute of a subscript (``cfg["m"].kw``), names no path: such a dict is not traced.

A dict literal nested in another under a string key (``{"model": {"trust_remote_code": t}}``) lies at that key's
path under the outer literal (:func:`nesting`). A key removed from a dict (``del cfg["model"]``, ``cfg.pop("model")``)
removes the path ``cfg["model"]`` and every path under it (:func:`removals`).
"""

from __future__ import annotations

import ast
import json

from cleanroom.code_gates.names import const_str, dict_items, dotted_name, is_const

KEY = "trust_remote_code"
#: A dotted name and the string keys that index it: ``cfg["model"]`` is ``("cfg", ("model",))``.
Path = tuple[str, tuple[str, ...]]
#: (source, copy, where): the dict *source* (a path, a call's result, or a dict literal merged in) copied into the
#: dict at the path *copy*, by the statement or call *where*.
Copy = tuple[ast.AST, ast.AST, ast.AST]
#: Keys shown whole in a message; a longer path shows its first two and its last (``cfg["a"]["b"]…["z"]``).
_SHOWN_KEYS = 4


def dict_path(node: ast.AST) -> Path | None:
    """The path *node* names (see the module docstring), or None."""
    keys: list[str] = []
    while isinstance(node, ast.Subscript):
        key = const_str(node.slice)
        if key is None:
            return None
        keys.append(key)
        node = node.value
    dotted = dotted_name(node)
    return None if dotted is None else (dotted, tuple(reversed(keys)))


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


def nesting(nodes: dict[type, list]) -> dict[int, tuple[ast.Dict, str]]:
    """id of a dict literal -> (the dict literal it is a value of, under that string key)."""
    found: dict[int, tuple[ast.Dict, str]] = {}
    for node in nodes.get(ast.Dict, ()):
        for name, value, _ in dict_items(node):
            if isinstance(value, ast.Dict):
                found[id(value)] = (node, name)
    return found


def outermost(node: ast.Dict, parents: dict[int, tuple[ast.Dict, str]]) -> tuple[ast.Dict, tuple[str, ...]]:
    """The outermost dict literal *node* is nested in (itself if none), and *node*'s keys under it."""
    keys: list[str] = []
    while id(node) in parents:
        node, key = parents[id(node)]
        keys.append(key)
    return node, tuple(reversed(keys))


def copied(value: ast.AST) -> list[ast.AST]:
    """The dicts *value* is or copies: a path (``a``, ``a["m"]``, ``dict(a, ...)``, ``a.copy()``, ``copy.deepcopy(a)``),
    a call's result (``f(...)``: a dict a function of the module may return; ``f(...).copy()``), every dict merged
    into a literal (``{**a, **f(...)}``), or the dict a key is popped from a path as (``a.pop("m")`` is a copy of
    ``a["m"]``); empty for anything else."""
    if dict_path(value) is not None:
        return [value]
    if isinstance(value, ast.Dict):
        return [s for k, v in zip(value.keys, value.values, strict=True) if k is None for s in copied(v)]
    if not isinstance(value, ast.Call):
        return []
    func = value.func
    if isinstance(func, ast.Attribute) and func.attr == "copy" and not value.args:
        return copied(func.value)
    if isinstance(func, ast.Attribute) and func.attr == "pop" and value.args and dict_path(func.value) is not None:
        key = const_str(value.args[0])
        at = ast.Subscript(value=func.value, slice=ast.Constant(value=key), ctx=ast.Load())
        return [ast.copy_location(at, value)] if key is not None else []
    last = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    if last in ("dict", "copy", "deepcopy"):
        return copied(value.args[0]) if value.args else []
    return [value]


def copies(nodes: dict[type, list], calls: list[ast.Call]) -> list[Copy]:
    """Each dict copied into one at a path: ``b = a``, ``b = dict(a)``, ``b = a.copy()``, ``b = {**a}``,
    ``b = f(...)``, ``b["m"] = a``, and ``b.update(a)`` (also ``b.update({...})``, a literal merged into it)."""
    found: list[Copy] = []
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        sources = copied(assign.value) if assign.value is not None else []
        if sources:
            targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
            found.extend((s, target, assign) for target in targets if dict_path(target) is not None for s in sources)
    for call in calls:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "update" and dict_path(func.value) is not None:
            for arg in call.args:
                merged = [arg] if isinstance(arg, ast.Dict) else []
                found.extend((source, func.value, call) for source in (*merged, *copied(arg)))
    return found


def written(nodes: dict[type, list], calls: list[ast.Call]) -> list[tuple[ast.AST, ast.AST, ast.AST]]:
    """(position, the dict written into, value) for each ``trust_remote_code`` written into a dict at a path after
    it was built, by a subscript, ``update(trust_remote_code=...)`` or ``setdefault("trust_remote_code", ...)``
    (``update({...})`` is a dict literal merged into it); a literal ``False``/``None`` writes nothing that matters."""
    found: list[tuple[ast.AST, ast.AST, ast.AST]] = []
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and const_str(target.slice) == KEY and assign.value is not None:
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
        elif len(call.args) == 2 and const_str(call.args[0]) == KEY:
            found.append((call, func.value, call.args[1]))
    return [(where, owner, value) for where, owner, value in found if not is_const(value, False, None)]


def removals(nodes: dict[type, list], calls: list[ast.Call]) -> list[tuple[ast.AST, str, ast.AST]]:
    """(the dict, the key, where) for every ``del OWNER["key"]`` and ``OWNER.pop("key", ...)`` of a string key: the
    path ``OWNER["key"]`` (``trust_remote_code`` itself, or a dict that may hold it) is removed there."""
    found: list[tuple[ast.AST, str, ast.AST]] = []
    for stmt in nodes.get(ast.Delete, ()):
        for target in stmt.targets:
            key = const_str(target.slice) if isinstance(target, ast.Subscript) else None
            if isinstance(target, ast.Subscript) and key is not None:
                found.append((target.value, key, target))
    for call in calls:
        func = call.func
        key = const_str(call.args[0]) if call.args else None
        if isinstance(func, ast.Attribute) and func.attr == "pop" and key is not None:
            found.append((func.value, key, call))
    return found


__all__ = [
    "KEY",
    "Copy",
    "Path",
    "copied",
    "copies",
    "dict_path",
    "nesting",
    "outermost",
    "path_text",
    "prefixes",
    "removals",
    "written",
]

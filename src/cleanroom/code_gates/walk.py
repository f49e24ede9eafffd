"""The tree walk: every node of a module bucketed by type in one pass, and the truth-value contexts.

The rules then look only at the buckets they need (calls, attributes, subscripts, dicts), which is
cheaper than one ``ast.walk`` per rule and an ``isinstance`` per node.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

# Leaves no rule buckets: a Name, a Constant or a context/operator singleton is only ever read
# through its parent (``call.func``, ``kw.value``), so it is never pushed. They are most of the nodes.
_LEAVES = frozenset(
    {ast.Name, ast.Constant}
    | {
        c
        for base in (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
        for c in base.__subclasses__()
    }
)
# Fields that only ever hold identifiers, numbers or flags, never a node: not worth a getattr.
_PRIMITIVE_FIELDS = frozenset(
    {
        "id",
        "attr",
        "name",
        "module",
        "level",
        "arg",
        "asname",
        "kind",
        "conversion",
        "is_async",
        "type_comment",
        "simple",
        "tag",
        "ctx",
        "op",
    }
)
_CHILD_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}


def _child_fields(kind: type[ast.AST]) -> tuple[str, ...]:
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = _CHILD_FIELDS[kind] = tuple(f for f in kind._fields if f not in _PRIMITIVE_FIELDS)
    return fields


def collect(tree: ast.AST) -> dict[type, list]:
    """Every non-leaf node of *tree* bucketed by type: one pass, cheaper than ``ast.walk`` plus isinstance.

    Per node type only the fields that can hold nodes are read (``_CHILD_FIELDS``), and leaves
    (``_LEAVES``) are never pushed; a field's value is still type-checked, so an unexpected
    primitive in a node field is skipped, never walked.
    """
    buckets: dict[type, list] = {}
    stack = [tree]
    AST = ast.AST
    leaves = _LEAVES
    child_fields = _CHILD_FIELDS
    while stack:
        node = stack.pop()
        kind = type(node)
        bucket = buckets.get(kind)
        if bucket is None:
            buckets[kind] = [node]
        else:
            bucket.append(node)
        fields = child_fields.get(kind) or _child_fields(kind)
        for field in fields:
            value = getattr(node, field, None)
            if type(value) is list:
                stack.extend(item for item in value if type(item) not in leaves and isinstance(item, AST))
            elif type(value) not in leaves and isinstance(value, AST):
                stack.append(value)
    return buckets


def flag_contexts(nodes: dict[type, list]) -> set[int]:
    """ids of expressions read as a truth value: ``if x``, ``assert x``, ``not x``, ``a and x``, ``x == y``,
    ``bool(x)``."""
    ids: set[int] = set()
    for kind in (ast.If, ast.While, ast.IfExp, ast.Assert):
        ids.update(id(n.test) for n in nodes.get(kind, ()))
    for n in nodes.get(ast.BoolOp, ()):
        ids.update(id(v) for v in n.values)
    for n in nodes.get(ast.UnaryOp, ()):
        if type(n.op) is ast.Not:
            ids.add(id(n.operand))
    for n in nodes.get(ast.Compare, ()):
        ids.update(id(v) for v in (n.left, *n.comparators))
    for n in nodes.get(ast.Call, ()):
        if isinstance(n.func, ast.Name) and n.func.id == "bool" and len(n.args) == 1 and not n.keywords:
            ids.add(id(n.args[0]))
    return ids


def runs_before(root: ast.AST, where: tuple[int, int], prior: Callable[[ast.stmt], bool]) -> bool:
    """Some simple statement (not ``if``/``for``/``with``/``try``/...) satisfying *prior* stands before the statement
    that holds the position *where* (line, column), in the same block of *root* or of a statement that holds it:
    every path from *root*'s start to *where* runs it (``kw = {}`` before the ``if`` whose body spreads ``**kw``)."""
    stack: list[ast.AST] = [root]
    while stack:
        node = stack.pop()
        blocks = [getattr(node, field, None) for field in ("body", "orelse", "finalbody")]
        blocks.extend(h.body for h in getattr(node, "handlers", ()) or ())
        blocks.extend(c.body for c in getattr(node, "cases", ()) or ())
        for block in blocks:
            if not isinstance(block, list):
                continue
            for i, stmt in enumerate(block):
                if isinstance(stmt, ast.stmt) and _holds(stmt, where):
                    if any(not isinstance(s, _COMPOUND) and prior(s) for s in block[:i]):
                        return True
                    stack.append(stmt)
                    break
    return False


_COMPOUND = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.Match,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
)


def _holds(stmt: ast.stmt, where: tuple[int, int]) -> bool:
    end = (stmt.end_lineno or stmt.lineno, stmt.end_col_offset or 0)
    return (stmt.lineno, stmt.col_offset) <= where <= end

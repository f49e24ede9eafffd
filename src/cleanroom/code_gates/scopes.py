"""The scopes of a module and what a name was bound to in the scope where it is used.

One hop of local data flow, for the rules that judge a receiver or an argument by what was
assigned to it: ``llm = LLM(...); llm.chat(m)``, ``t = tok.chat_template; env.from_string(t)``,
``kw = {"pad_token": p}; AutoTokenizer.from_pretrained(path, **kw)``. Inside a scope every binding
counts wherever it stands (flow-insensitive, like :class:`~cleanroom.code_gates.names.Names`), but
a name is looked up where Python looks it up, from the position of the use:

* a comprehension's targets and a lambda's parameters are their own scope (Python 3): in
  ``[llm.chat(m) for llm in engines]`` or ``lambda llm: llm.chat(m)`` the name holds whatever the loop or
  the caller gives (unknown), not the function's ``llm = LLM(...)``; the first iterable of a comprehension
  and a lambda's defaults are evaluated outside, and a ``:=`` in a comprehension binds in the function;
* then the innermost enclosing function that binds it, else the module (whose bindings exclude the bodies
  of its functions and classes);
* a name some function declares ``global`` is the module's: its values are the module's bindings plus
  those of every function that declares it ``global`` (``def init(): global llm; llm = LLM(p)`` binds the
  ``llm`` that ``run`` reads); a name some function declares ``nonlocal`` may also hold what that function
  stored (unknown).

``self.x`` and ``cls.x`` are looked up in the enclosing class, every method of it: ``__init__`` binds what
``run`` uses.
"""

from __future__ import annotations

import ast
import bisect
from collections.abc import Callable
from typing import Any

from cleanroom.code_gates.names import bound_pairs

_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
# Scopes that live inside an expression: their targets or parameters are not the enclosing function's.
EXPRESSION_SCOPES = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
Function = ast.FunctionDef | ast.AsyncFunctionDef
Position = tuple[int, int]


class Scopes:
    """The module's functions and classes by line, and the bindings of each scope (computed on first use)."""

    def __init__(self, nodes: dict[type, list]) -> None:
        self.nodes = nodes
        self.module: ast.AST | None = nodes.get(ast.Module, [None])[0]
        self._functions: _Nesting | None = None
        self._classes: _Nesting | None = None
        self._expressions: _Nesting | None = None
        self._bindings: dict[int, dict[str, list[ast.AST | None]]] = {}
        self._declarations: dict[str, list[Function]] | None = None

    def functions(self) -> list[Function]:
        """The module's functions, outer before inner; sorted on first use: most modules never need it."""
        return self._function_nesting().nodes

    def _function_nesting(self) -> _Nesting:
        if self._functions is None:
            self._functions = _Nesting([f for t in (ast.FunctionDef, ast.AsyncFunctionDef) for f in self.nodes.get(t, ())])
        return self._functions

    def enclosing(self, line: int) -> Function | None:
        """The innermost function whose lines hold *line*, or None at module level."""
        chain = self._chain(line)
        return chain[0] if chain else None

    def enclosing_class(self, line: int) -> ast.ClassDef | None:
        """The innermost class whose lines hold *line*, or None."""
        chain = self._class_nesting().chain(line)
        return chain[0] if chain else None

    def _class_nesting(self) -> _Nesting:
        if self._classes is None:
            self._classes = _Nesting(list(self.nodes.get(ast.ClassDef, ())))
        return self._classes

    def values(self, key: str, at: ast.AST) -> list[ast.AST | None]:
        """The values *key* (a name, ``self.attr`` or ``cls.attr``) is bound to in the scope that binds it
        as seen from the node *at*; None for a binding whose value is unknown (a parameter, a loop or
        comprehension variable, an unpacked call, an import). Empty when nothing binds it, or for any
        other dotted key."""
        return self.lookup(key, at)[1]

    def lookup(self, key: str, at: ast.AST) -> tuple[ast.AST | None, list[ast.AST | None]]:
        """(the scope whose binding of *key* the node *at* sees, its values as in :meth:`values`). The scope
        is a function, a lambda or comprehension, the class (``self.x``) or the module; None for a dotted
        key that is not ``self.x``/``cls.x`` or outside a class."""
        head, _, rest = key.partition(".")
        line = getattr(at, "lineno", 1)
        if rest:
            if head not in ("self", "cls") or "." in rest:
                return None, []
            chain = self._class_nesting().chain(line)
            if not chain:
                return None, []
            bound = self._bound(chain[0], deep=True)  # ``self.x`` and ``cls.x`` name one attribute of the class
            return chain[0], [*bound.get(f"self.{rest}", []), *bound.get(f"cls.{rest}", [])]
        for inner in self._expression_chain(at):
            if key in own_names(inner):
                return inner, [None]  # a comprehension's target or a lambda's parameter: whatever it is given
        declared = self._declared()
        for func in self._chain(line):
            if func in declared.get(f"global {key}", ()):
                break  # ``global key``: the module's name
            found = self._bound(func, deep=False).get(key)
            if found is not None:
                shared = bool(declared.get(f"nonlocal {key}"))  # a nested function may store into it
                return func, [*found, None] if shared else found
        return self.module, self._global_values(key)

    def _global_values(self, key: str) -> list[ast.AST | None]:
        """The module's bindings of *key*, and those of every function that declares it ``global``."""
        found = list(self._bound(self.module, deep=False).get(key, [])) if self.module is not None else []
        for func in self._declared().get(f"global {key}", ()):
            found.extend(self._bound(func, deep=False).get(key, []))
        return found

    def _declared(self) -> dict[str, list[Function]]:
        """``"global NAME"`` / ``"nonlocal NAME"`` -> the functions that declare it so (computed once)."""
        if self._declarations is None:
            self._declarations = {}
            statements = [s for t in (ast.Global, ast.Nonlocal) for s in self.nodes.get(t, ())]
            for stmt in statements:
                func = self.enclosing(stmt.lineno)
                if func is None:
                    continue  # ``global x`` at module level changes nothing
                word = "global" if isinstance(stmt, ast.Global) else "nonlocal"
                for name in stmt.names:
                    self._declarations.setdefault(f"{word} {name}", []).append(func)
        return self._declarations

    def _expression_chain(self, at: ast.AST) -> list[ast.AST]:
        """The lambdas and comprehensions whose own scope holds the node *at*, innermost first."""
        if self._expressions is None:
            if not any(self.nodes.get(t) for t in EXPRESSION_SCOPES):
                return []
            self._expressions = _Nesting(
                [n for t in EXPRESSION_SCOPES for n in self.nodes.get(t, ())], span=_position_span
            )
        where = (getattr(at, "lineno", 1), getattr(at, "col_offset", 0))
        return [n for n in self._expressions.chain(where) if not _evaluated_outside(n, where)]

    def _chain(self, line: int) -> list[Function]:
        """The functions whose lines hold *line*, innermost first."""
        return self._function_nesting().chain(line)

    def _bound(self, scope: ast.AST, deep: bool) -> dict[str, list[ast.AST | None]]:
        """Dotted name -> the values bound to it in *scope* (into nested scopes only when *deep*)."""
        cached = self._bindings.get(id(scope))
        if cached is not None:
            return cached
        bound: dict[str, list[ast.AST | None]] = {}
        stack = list(ast.iter_child_nodes(scope))
        if isinstance(scope, ast.ClassDef):  # ``x = v`` in the class body is ``self.x`` in its methods
            for stmt in scope.body:
                if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                    for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                        if isinstance(target, ast.Name):
                            for owner in ("self", "cls"):
                                bound.setdefault(f"{owner}.{target.id}", []).append(stmt.value)
        while stack:
            node = stack.pop()
            for key, value in _bindings_of(node):
                bound.setdefault(key, []).append(value)
            if isinstance(node, _NESTED) and not deep:
                continue  # its name is bound here (above); its body is another scope
            stack.extend(ast.iter_child_nodes(node))
        self._bindings[id(scope)] = bound
        return bound


def _line_span(node: ast.AST) -> tuple[Any, Any]:
    start = getattr(node, "lineno", 1)
    return start, getattr(node, "end_lineno", None) or start


def _position_span(node: ast.AST) -> tuple[Any, Any]:
    start = (getattr(node, "lineno", 1), getattr(node, "col_offset", 0))
    return start, (getattr(node, "end_lineno", None) or start[0], getattr(node, "end_col_offset", None) or start[1])


class _Nesting:
    """Nodes with ranges that nest (functions or classes by line, lambdas and comprehensions by position), each
    with its parent, for finding the ones that hold a place in O(depth + log n) rather than a scan of every node
    (a generated module has thousands)."""

    def __init__(self, nodes: list, span: Callable[[ast.AST], tuple[Any, Any]] = _line_span) -> None:
        spans = sorted(((span(n), n) for n in nodes), key=lambda pair: (pair[0][0], _negated(pair[0][1])))
        self.nodes = [n for _, n in spans]
        self._starts = [s for (s, _), _ in spans]
        self._ends = [e for (_, e), _ in spans]
        self._parent: list[int] = []
        open_: list[int] = []  # indices of the nodes whose range holds the current start
        for i, start in enumerate(self._starts):
            while open_ and self._ends[open_[-1]] < start:
                open_.pop()
            self._parent.append(open_[-1] if open_ else -1)
            open_.append(i)

    def chain(self, where: Any) -> list:
        """The nodes whose ranges hold *where* (a line, or a (line, column)), innermost first: the last node
        starting at or before it and those of its ancestors that still hold it (every node holding it is one)."""
        i = bisect.bisect_right(self._starts, where) - 1
        chain = []
        while i >= 0:
            if where <= self._ends[i]:
                chain.append(self.nodes[i])
            i = self._parent[i]
        return chain


def _negated(end: Any) -> Any:
    """A sort key that puts the longer of two ranges starting together first (the outer one)."""
    return tuple(-x for x in end) if isinstance(end, tuple) else -end


def own_names(scope: ast.AST) -> set[str]:
    """The names a function's or a lambda's parameters, or a comprehension's targets, bind in its own scope."""
    if isinstance(scope, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef):
        a = scope.args
        return {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x is not None}
    return {
        key for gen in getattr(scope, "generators", ()) for key, _ in bound_pairs(gen.target, None) if "." not in key
    }


def _evaluated_outside(scope: ast.AST, where: Position) -> bool:
    """*where* lies in the part of *scope* Python evaluates in the enclosing scope: a comprehension's first
    iterable, a lambda's defaults."""
    if isinstance(scope, ast.Lambda):
        outer: list[ast.AST] = [*scope.args.defaults, *(d for d in scope.args.kw_defaults if d is not None)]
    else:
        generators: list[ast.comprehension] = getattr(scope, "generators", [])
        outer = [generators[0].iter] if generators else []
    for part in outer:
        start, end = _position_span(part)
        if start <= where <= end:
            return True
    return False


def _bindings_of(node: ast.AST) -> list[tuple[str, ast.AST | None]]:
    """(dotted name, value or None) for each name one statement or expression binds."""
    if isinstance(node, ast.Assign):
        return [pair for target in node.targets for pair in bound_pairs(target, node.value)]
    if isinstance(node, ast.AnnAssign | ast.NamedExpr | ast.AugAssign):
        return list(bound_pairs(node.target, node.value)) if node.value is not None else []
    if isinstance(node, ast.For | ast.AsyncFor):  # a comprehension's target is its own scope's, not here
        return list(bound_pairs(node.target, None))
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return list(bound_pairs(node.optional_vars, node.context_expr))
    if isinstance(node, ast.arg):
        return [(node.arg, None)]
    if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name is not None:
        return [(node.name, None)]  # ``except E as s``, ``case bytes() as s``, ``case [*s]``
    if isinstance(node, ast.MatchMapping) and node.rest is not None:
        return [(node.rest, None)]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [((a.asname or a.name).split(".", 1)[0], None) for a in node.names]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [(node.name, None)]
    return []

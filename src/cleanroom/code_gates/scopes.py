"""The scopes of a module and what a name was bound to in the scope where it is used.

One hop of local data flow, for the rules that judge a receiver or an argument by what was
assigned to it: ``llm = LLM(...); llm.chat(m)``, ``t = tok.chat_template; env.from_string(t)``,
``kw = {"pad_token": p}; AutoTokenizer.from_pretrained(path, **kw)``. Inside a scope every binding
counts wherever it stands (flow-insensitive, like :class:`~cleanroom.code_gates.names.Names`), but
a name is looked up where Python looks it up: the innermost enclosing function that binds it, else
the module (whose bindings exclude the bodies of its functions and classes). ``self.x`` and
``cls.x`` are looked up in the enclosing class, every method of it: ``__init__`` binds what ``run``
uses.
"""

from __future__ import annotations

import ast
import bisect

from cleanroom.code_gates.names import bound_pairs

_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
Function = ast.FunctionDef | ast.AsyncFunctionDef


class Scopes:
    """The module's functions and classes by line, and the bindings of each scope (computed on first use)."""

    def __init__(self, nodes: dict[type, list]) -> None:
        self.nodes = nodes
        self.module: ast.AST | None = nodes.get(ast.Module, [None])[0]
        self._functions: _Nesting | None = None
        self._classes: _Nesting | None = None
        self._bindings: dict[int, dict[str, list[ast.AST | None]]] = {}
        self._shared: frozenset[str] | None = None

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

    def values(self, key: str, line: int) -> list[ast.AST | None]:
        """The values *key* (a name, ``self.attr`` or ``cls.attr``) is bound to in the scope that binds it
        as seen from *line*; None for a binding whose value is unknown (a parameter, a loop variable,
        an unpacked call, an import). Empty when nothing binds it, or for any other dotted key."""
        head, _, rest = key.partition(".")
        if rest:
            if head not in ("self", "cls") or "." in rest:
                return []
            if self._classes is None:
                self._classes = _Nesting(list(self.nodes.get(ast.ClassDef, ())))
            chain = self._classes.chain(line)
            if not chain:
                return []
            bound = self._bound(chain[0], deep=True)  # ``self.x`` and ``cls.x`` name one attribute of the class
            return [*bound.get(f"self.{rest}", []), *bound.get(f"cls.{rest}", [])]
        if key in self._declared():  # ``global``/``nonlocal``: rebound from another scope, its values unknown here
            return [None]
        for func in self._chain(line):
            found = self._bound(func, deep=False).get(key)
            if found is not None:
                return found
        return self._bound(self.module, deep=False).get(key, []) if self.module is not None else []

    def _declared(self) -> frozenset[str]:
        """Names some function declares ``global`` or ``nonlocal`` (computed once)."""
        if self._shared is None:
            self._shared = frozenset(n for t in (ast.Global, ast.Nonlocal) for s in self.nodes.get(t, ()) for n in s.names)
        return self._shared

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


class _Nesting:
    """Nodes with line ranges that nest (functions, or classes), each with its parent, for finding the ones that
    hold a line in O(depth + log n) rather than a scan of every node (a generated module has thousands)."""

    def __init__(self, nodes: list) -> None:
        self.nodes = sorted(nodes, key=lambda n: (n.lineno, -(n.end_lineno or n.lineno)))
        self._starts = [n.lineno for n in self.nodes]
        self._parent: list[int] = []
        open_: list[int] = []  # indices of the nodes whose range holds the current start
        for i, n in enumerate(self.nodes):
            while open_ and (self.nodes[open_[-1]].end_lineno or self.nodes[open_[-1]].lineno) < n.lineno:
                open_.pop()
            self._parent.append(open_[-1] if open_ else -1)
            open_.append(i)

    def chain(self, line: int) -> list:
        """The nodes whose lines hold *line*, innermost first: the last node starting at or before it and those of
        its ancestors that still hold it (every node holding *line* is one of them)."""
        i = bisect.bisect_right(self._starts, line) - 1
        chain = []
        while i >= 0:
            n = self.nodes[i]
            if line <= (n.end_lineno or n.lineno):
                chain.append(n)
            i = self._parent[i]
        return chain


def _bindings_of(node: ast.AST) -> list[tuple[str, ast.AST | None]]:
    """(dotted name, value or None) for each name one statement or expression binds."""
    if isinstance(node, ast.Assign):
        return [pair for target in node.targets for pair in bound_pairs(target, node.value)]
    if isinstance(node, ast.AnnAssign | ast.NamedExpr | ast.AugAssign):
        return list(bound_pairs(node.target, node.value)) if node.value is not None else []
    if isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
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

"""``trust_remote_code`` kept in a dict that reaches a load (CR501): the dict rule.

A dict is how a switch travels to a load it is spread into (``kw = {"trust_remote_code": t};
AutoModel.from_pretrained(p, **kw)``, or a repository's own wrapper, ``load_model(p, **kw)``): the load
itself shows no keyword. The rule judges the dict where the key is written:

* a dict literal's ``"trust_remote_code": True``, anywhere; a non-literal value where the dict is passed on;
* the same key written into a dict afterwards: ``kw["trust_remote_code"] = t``,
  ``kw.update(trust_remote_code=t)``, ``kw.update({"trust_remote_code": t})``,
  ``kw.setdefault("trust_remote_code", t)``: ``True`` anywhere, a non-literal where that dict is passed on.

A dict is a *binding*: its dotted name in the scope that binds its first name, looked up where it is used
(:meth:`Scopes.lookup <cleanroom.code_gates.scopes.Scopes.lookup>`; ``self.x`` is its class's), so a
same-named dict in another function or class is another dict. A binding is *passed on* where it is

* spread into any call (``f(**kw)``, ``f(**dict(kw))``);
* an argument of a load (``pipeline(..., model_kwargs=kw)``);
* an argument of a function of this module (``f(...)``, or ``self.f(...)`` for a method of the enclosing class)
  whose matching parameter that function spreads; a function of this module that does not spread it keeps it;
* an argument of a callee this module does not define, unless the callee only records its arguments
  (``print``, ``str``, ``sorted``, ``json.dump``, ``logging``/``logger.info``, ``rows.append``): an unknown
  callee may spread it (fail closed);
* copied into a binding that is passed on (``b = dict(a)``, ``a.copy()``, ``{**a}``, ``b.update(a)``).

So a record of the setting (a provenance, logging or results dict: dumped, printed, appended, sorted, or given
to a function here that only reads it) is not passed on. A dict literal standing as such an argument is passed
on where it stands.

A key removed from the same binding afterwards (``del kw["trust_remote_code"]``,
``kw.pop("trust_remote_code", None)``), where every later pass of the dict runs after the removal (a removal
in one branch does not clear a spread in another), is no longer in it: silent, ``True`` included.
``dict(trust_remote_code=t)`` is a call, judged with the call rules; a key spread from a dict literal into a call
is this rule's alone (never reported twice).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import partial

from cleanroom.code_gates.forwarding import load_target
from cleanroom.code_gates.names import Names, const_str, dotted_name, is_const
from cleanroom.code_gates.scopes import Scopes
from cleanroom.code_gates.violation import Report
from cleanroom.code_gates.vocabulary import LOADER_DECIDES
from cleanroom.code_gates.walk import runs_before

_KEY = "trust_remote_code"
# A binding: the scope that binds the dict (a function, lambda, comprehension, class for ``self.x``, the
# module) and its dotted name there.
Binding = tuple[object, str]
Position = tuple[int, int]
# Callees that only read or record their arguments: a dict handed to one is not passed on.
_RECORD_FUNCTIONS = frozenset(
    {"print", "str", "repr", "format", "len", "bool", "hash", "id", "type", "isinstance", "vars", "dict"}
    | {"sorted", "list", "tuple", "set", "frozenset", "iter", "enumerate", "zip", "reversed", "any", "all"}
)
_RECORD_MODULES = frozenset({"json", "yaml", "pickle", "pprint", "logging", "warnings", "copy", "wandb", "mlflow"})
_RECORD_METHODS = frozenset(
    {"append", "appendleft", "extend", "insert", "add", "write", "writelines", "dump", "dumps", "pprint"}
    | {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
)


def check_dicts(
    nodes: dict[type, list], calls: list[ast.Call], add: Report, scopes: Scopes, names: Names, helpers: Mapping[str, str]
) -> None:
    """The dict rule over one module (see the module docstring)."""
    spread = {id(kw.value) for call in calls for kw in call.keywords if kw.arg is None}
    keys = [
        (node, key, value)
        for node in nodes.get(ast.Dict, ())
        if id(node) not in spread  # ``f(**{...})``: checked as the call's keywords
        for key, value in zip(node.keys, node.values, strict=True)
        if key is not None and const_str(key) == _KEY and not is_const(value, False, None)
    ]
    written = _written(nodes, calls)
    if not keys and not written:
        return  # most modules: nothing to trace
    bound: dict[int, ast.AST] = {}  # dict literal -> the dict it is bound to or merged into
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        for target in assign.targets if isinstance(assign, ast.Assign) else [assign.target]:
            if assign.value is not None and dotted_name(target) is not None:
                bound[id(assign.value)] = target
    copies = _copies(nodes, calls)
    for source, target, _ in copies:
        if isinstance(source, ast.Dict):  # ``kw.update({"trust_remote_code": t})``
            bound[id(source)] = target
    owners = [owner for _, owner, _ in written] + [bound[id(n)] for n, _, _ in keys if id(n) in bound]
    flow = _Flow(scopes, nodes, names, helpers, _relevant({dotted_name(o) for o in owners}, copies))
    flow.key_dicts = {id(node) for node, _, _ in keys}
    for call in calls:
        flow.call(call)
    flow.copies(copies)
    flow.removals(calls)
    for node, key, value in keys:
        target = bound.get(id(node))
        binding = flow.binding(target) if target is not None else None
        if binding is not None and flow.removed(binding, node):
            continue
        if is_const(value, True):
            add(key, "CR501", "trust_remote_code: True in a dict")
        elif id(node) in flow.handed or (binding is not None and flow.passed(binding)):
            add(key, "CR501", "trust_remote_code in a dict that is passed on may be True", LOADER_DECIDES)
    for where, owner, value in written:
        binding = flow.binding(owner)
        if binding is None or flow.removed(binding, where):
            continue
        if is_const(value, True):
            add(where, "CR501", f"trust_remote_code: True written into {binding[1]}")
        elif flow.passed(binding):
            add(where, "CR501", f"trust_remote_code written into {binding[1]}, which is passed on, may be True", LOADER_DECIDES)


#: What a call of a local function passes on (:meth:`_Flow._spread_params`): positional parameters as a call fills
#: them, the parameters that pass their value on, the named parameters, the ``*args`` and ``**kwargs`` names.
_Params = tuple[list[str], set[str], set[str], str | None, str | None]


class _Flow:
    """Where each dict binding is passed on and where the key is removed from it (see the module docstring). Only
    the dotted names in *relevant* (a dict that holds the key, or a copy of one) are traced: most calls pass none."""

    def __init__(
        self, scopes: Scopes, nodes: dict[type, list], names: Names, helpers: Mapping[str, str], relevant: set[str]
    ) -> None:
        self.scopes = scopes
        self.nodes = nodes
        self.names = names
        self.helpers = helpers
        self.relevant = relevant
        self.key_dicts: set[int] = set()  # ids of the dict literals that hold the key
        self.handed: set[int] = set()  # ids of those standing as an argument that passes them on
        self._passes: dict[Binding, list[ast.AST]] = {}
        self._removals: dict[Binding, list[ast.AST]] = {}
        self._defined: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] | None = None
        self._params: dict[int, _Params] = {}

    def binding(self, owner: ast.AST) -> Binding | None:
        """The binding the dotted name *owner* (``kw``, ``cfg.model_kwargs``, ``self.kw``) refers to where it
        stands: the scope that binds its first name (the class for ``self.``/``cls.``) and the dotted name."""
        key = dotted_name(owner)
        if key is None:
            return None
        head = key.partition(".")[0]
        if head in ("self", "cls"):
            return self.scopes.enclosing_class(getattr(owner, "lineno", 1)), key
        return self.scopes.lookup(head, owner)[0], key

    def _traced(self, value: ast.AST) -> ast.AST | None:
        """The node to record for *value* as an argument or spread: a dict literal holding the key, or the traced
        dict it names or copies (``kw``, ``dict(kw)``, ``kw.copy()``); None for anything else."""
        if isinstance(value, ast.Dict):
            return value if id(value) in self.key_dicts else None
        source = _copied(value)
        return source if source is not None and dotted_name(source) in self.relevant else None

    def call(self, call: ast.Call) -> None:
        """Record what *call* passes on: its spreads, and its arguments as its callee takes them."""
        if not any(self._traced(v) is not None for v in (*call.args, *(kw.value for kw in call.keywords))):
            return  # most calls: nothing traced
        for kw in call.keywords:
            if kw.arg is None:
                self._passes_at(kw.value)
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "update" and dotted_name(func.value) is not None:
            return  # ``other.update(kw)``: kw is copied into other (:func:`_copies`)
        params = self._local_params(func)
        if params is not None:  # a function of this module: the arguments its parameters pass on
            for positional, passing, named, rest, extra in params:
                for i, arg in enumerate(call.args):  # a surplus positional lands in *rest
                    if (positional[i] if i < len(positional) else rest) in passing:
                        self._passes_at(arg)
                for kw in call.keywords:  # a keyword no parameter names lands in **extra
                    if kw.arg is not None and (kw.arg if kw.arg in named else extra) in passing:
                        self._passes_at(kw.value)
        elif load_target(call, self.names, self.helpers) is not None or not self._records(func):
            for value in (*call.args, *(kw.value for kw in call.keywords if kw.arg is not None)):
                self._passes_at(value)

    def _passes_at(self, value: ast.AST) -> None:
        node = self._traced(value)
        if isinstance(node, ast.Dict):
            self.handed.add(id(node))
        elif node is not None:
            binding = self.binding(node)
            if binding is not None:
                self._passes.setdefault(binding, []).append(node)

    def _records(self, func: ast.AST) -> bool:
        """The callee only records its arguments (see :data:`_RECORD_FUNCTIONS` and its kin)."""
        qual = self.names.resolve(func)
        if qual is not None:
            return qual.split(".", 1)[0] in _RECORD_MODULES
        if isinstance(func, ast.Name):
            return func.id in _RECORD_FUNCTIONS
        if isinstance(func, ast.Attribute):
            receiver = dotted_name(func.value) or ""
            return func.attr in _RECORD_METHODS or receiver.rsplit(".", 1)[-1] in ("logger", "logging", "log")
        return False

    def _local_params(self, func: ast.AST) -> list[_Params] | None:
        """For a call of a function this module defines (``f``, or ``self.f``/``cls.f`` with ``f`` a method of the
        enclosing class): :meth:`_spread_params` for each ``def`` of that name; None for any other callee."""
        if isinstance(func, ast.Name) and func.id not in self.names.table:
            found = [self._spread_params(fn, bound=False) for fn in self._definitions().get(func.id, ())]
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("self", "cls"):
            owner = self.scopes.enclosing_class(func.lineno)
            methods = [
                s for s in (owner.body if owner is not None else ()) if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            found = [self._spread_params(m, bound=not _static(m)) for m in methods if m.name == func.attr]
        else:
            return None
        return found or None

    def _definitions(self) -> dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]:
        """Function name -> every ``def`` of that name in the module that a bare-name call can reach: not a
        class's method, which is called through an instance (computed once)."""
        if self._defined is None:
            self._defined = {}
            methods = {id(s) for c in self.nodes.get(ast.ClassDef, ()) for s in c.body}
            for fn in self.scopes.functions():
                if id(fn) not in methods:
                    self._defined.setdefault(fn.name, []).append(fn)
        return self._defined

    def _spread_params(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, bound: bool) -> _Params:
        """(positional parameters as a call fills them, without ``self`` when *bound*; the parameters that pass
        their value on; the named parameters; the ``*args`` and ``**kwargs`` names). A parameter passes its value
        on unless every use of it is an argument of a callee that only records (:meth:`_records`): spread, handed
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
                if isinstance(node, ast.Call) and self._records(node.func)
                for v in (*node.args, *(kw.value for kw in node.keywords))
            }
            passing = {
                node.id
                for node in ast.walk(fn)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and id(node) not in recorded
            } & (named | {rest, extra} - {None})
            known = self._params[id(fn)] = (positional, passing, named, rest, extra)
        return (known[0][1:] if bound else known[0]), *known[1:]

    def copies(self, copies: list[tuple[ast.AST, ast.AST, ast.AST]]) -> None:
        """A dict copied into another binding (see :func:`_copies`) is passed on where the copy is (to a fixed
        point: a copy of a copy)."""
        pairs: list[tuple[Binding, Binding, ast.AST]] = []
        for source, target, where in copies:
            if isinstance(source, ast.Dict) or dotted_name(source) not in self.relevant:
                continue
            held, copy = self.binding(source), self.binding(target)
            if held is not None and copy is not None and copy != held:
                pairs.append((held, copy, where))
        changed = True
        while changed:
            changed = False
            for held, copy, where in pairs:
                if copy in self._passes and where not in self._passes.get(held, ()):
                    self._passes.setdefault(held, []).append(where)
                    changed = True

    def removals(self, calls: list[ast.Call]) -> None:
        """Record every ``del OWNER["trust_remote_code"]`` and ``OWNER.pop("trust_remote_code", ...)``."""
        owners: list[tuple[ast.AST, ast.AST]] = []
        for stmt in self.nodes.get(ast.Delete, ()):
            owners.extend(
                (t.value, t) for t in stmt.targets if isinstance(t, ast.Subscript) and const_str(t.slice) == _KEY
            )
        for call in calls:
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "pop" and call.args and const_str(call.args[0]) == _KEY:
                owners.append((func.value, call))
        for owner, where in owners:
            binding = self.binding(owner)
            if binding is not None:
                self._removals.setdefault(binding, []).append(where)

    def passed(self, binding: Binding) -> bool:
        return binding in self._passes

    def removed(self, binding: Binding, where: ast.AST) -> bool:
        """The key written at *where* is removed from *binding* afterwards: some removal follows it, and every
        pass of the dict after it runs only after a removal that follows it (a removal in one branch and a pass
        in another does not count)."""
        start = _position(where)
        after = [r for r in self._removals.get(binding, []) if _position(r) > start]
        if not after:
            return False
        for node in self._passes.get(binding, []):
            at = _position(node)
            if at < start:
                continue  # before the write: it never holds the key there
            root = self.scopes.enclosing(at[0]) or self.scopes.module
            guards = {_position(r) for r in after if _position(r) < at}
            if root is None or not runs_before(root, at, partial(_holds_any, positions=guards)):
                return False
        return True


def _static(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)


def _copies(nodes: dict[type, list], calls: list[ast.Call]) -> list[tuple[ast.AST, ast.AST, ast.AST]]:
    """(source, copy, where) for each dict copied into a named one: ``b = a``, ``b = dict(a)``, ``b = a.copy()``,
    ``b = {**a}``, and ``b.update(a)`` (also ``b.update({...})``, a literal merged into it)."""
    found: list[tuple[ast.AST, ast.AST, ast.AST]] = []
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        source = _copied(assign.value) if assign.value is not None else None
        if source is not None:
            targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
            found.extend((source, target, assign) for target in targets if dotted_name(target) is not None)
    for call in calls:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "update" and dotted_name(func.value) is not None:
            for arg in call.args:
                source = arg if isinstance(arg, ast.Dict) else _copied(arg)
                if source is not None:
                    found.append((source, func.value, call))
    return found


def _relevant(owners: set[str | None], copies: list[tuple[ast.AST, ast.AST, ast.AST]]) -> set[str]:
    """The dotted names worth tracing: the dicts that hold the key and, by name, every copy of one."""
    names = {o for o in owners if o is not None}
    edges = [(dotted_name(s), dotted_name(t)) for s, t, _ in copies if not isinstance(s, ast.Dict)]
    changed = True
    while changed:
        changed = False
        for source, target in edges:
            if source in names and target is not None and target not in names:
                names.add(target)
                changed = True
    return names


def _holds_any(stmt: ast.stmt, positions: set[Position]) -> bool:
    start, end = _position(stmt), (stmt.end_lineno or stmt.lineno, stmt.end_col_offset or 0)
    return any(start <= p <= end for p in positions)


def _copied(value: ast.AST) -> ast.AST | None:
    """The named dict *value* is or copies: ``a``, ``dict(a, ...)``, ``a.copy()``, ``copy.deepcopy(a)``, ``{**a}``."""
    if dotted_name(value) is not None:
        return value
    if isinstance(value, ast.Dict):
        return next((v for k, v in zip(value.keys, value.values, strict=True) if k is None and dotted_name(v)), None)
    if not isinstance(value, ast.Call):
        return None
    func = value.func
    if isinstance(func, ast.Attribute) and func.attr == "copy" and not value.args:
        return func.value if dotted_name(func.value) is not None else None
    last = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    if last in ("dict", "copy", "deepcopy") and value.args and dotted_name(value.args[0]) is not None:
        return value.args[0]
    return None


def _position(node: ast.AST) -> Position:
    return getattr(node, "lineno", 1), getattr(node, "col_offset", 0)


def _written(nodes: dict[type, list], calls: list[ast.Call]) -> list[tuple[ast.AST, ast.AST, ast.AST]]:
    """(position, the dict written into, value) for each ``trust_remote_code`` written into a named dict after it
    was built, by a subscript, ``update(trust_remote_code=...)`` or ``setdefault("trust_remote_code", ...)``
    (``update({...})`` is a dict literal merged into it); a literal ``False``/``None`` writes nothing that matters."""
    found: list[tuple[ast.AST, ast.AST, ast.AST]] = []
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and const_str(target.slice) == _KEY and assign.value is not None:
                if dotted_name(target.value) is not None:
                    found.append((target, target.value, assign.value))
    for call in calls:
        func = call.func
        if not isinstance(func, ast.Attribute) or func.attr not in ("update", "setdefault"):
            continue
        if dotted_name(func.value) is None:
            continue
        if func.attr == "update":  # a literal True keyword is the call rules' ``trust_remote_code=True``
            found.extend((kw, func.value, kw.value) for kw in call.keywords if kw.arg == _KEY and not is_const(kw.value, True))
        elif len(call.args) == 2 and const_str(call.args[0]) == _KEY:
            found.append((call, func.value, call.args[1]))
    return [(where, owner, value) for where, owner, value in found if not is_const(value, False, None)]


__all__ = ["check_dicts"]

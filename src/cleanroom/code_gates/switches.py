"""``trust_remote_code`` kept in a dict that reaches a load (CR501): the dict rule.

A dict is how a switch travels to a load it is spread into (``kw = {"trust_remote_code": t};
AutoModel.from_pretrained(p, **kw)``, or a repository's own wrapper, ``load_model(p, **kw)``): the load
itself shows no keyword. The rule judges the dict where the key is written:

* a dict literal's ``"trust_remote_code": True``, anywhere; a non-literal value where the dict is passed on;
* the same key written into a dict afterwards: ``kw["trust_remote_code"] = t``,
  ``kw.update(trust_remote_code=t)``, ``kw.update({"trust_remote_code": t})``,
  ``kw.setdefault("trust_remote_code", t)``: ``True`` anywhere, a non-literal where that dict is passed on.

A dict is a *binding*: its path (:mod:`~cleanroom.code_gates.dict_paths`: a dotted name and string keys,
``cfg["model"]``) in the scope that binds its first name (:meth:`Scopes.lookup
<cleanroom.code_gates.scopes.Scopes.lookup>`; ``self.x`` is its class's), so a same-named dict in another
function or class is another dict. A dict at ``cfg["model"]`` (written there, bound there, or a literal nested
under ``"model"`` in ``cfg``'s) is passed on where ``cfg["model"]`` or ``cfg`` is; an attribute is no part of its
object (``self.cfg.model_kwargs`` is passed on only as itself). A binding is *passed on* where it is

* spread into any call (``f(**kw)``, ``f(**dict(kw))``);
* an argument of a load (``pipeline(..., model_kwargs=kw)``);
* an argument of a function of this module (``f(...)``, or ``self.f(...)`` for a method of the enclosing class)
  whose matching parameter that function passes on; one that only records it keeps it;
* an argument of a callee this module does not define, unless the callee only records its arguments
  (``print``, ``str``, ``sorted``, ``json.dump``, ``logging``/``logger.info``, ``rows.append``): an unknown
  callee may spread it (fail closed);
* copied into a binding that is passed on (``b = dict(a)``, ``a.copy()``, ``{**a}``, ``b.update(a)``,
  ``cfg["model"] = a``);
* returned by a function of this module (``return kw``) whose result is passed on where it is called
  (``load(p, **build(t))``, ``kw = build(t)`` then spread), or that is public (other modules call it, unseen).

So a record of the setting (a provenance, logging or results dict: dumped, printed, appended, sorted, or given
to a function here that only reads it) is not passed on. A dict literal standing as such an argument is passed
on where it stands.

A key removed from the same path afterwards (``del kw["trust_remote_code"]``, ``cfg["m"].pop("trust_remote_code",
None)``), where every later pass of the dict (or of one holding it) runs after the removal (a removal in one
branch does not clear a spread in another), is no longer in it: silent, ``True`` included; a removal at another
path clears nothing. ``dict(trust_remote_code=t)`` is a call, judged with the call rules; a key spread from a dict
literal into a call is this rule's alone (never reported twice).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import partial

from cleanroom.code_gates.dict_paths import (
    KEY,
    Copy,
    Path,
    copied,
    copies,
    dict_path,
    nesting,
    outermost,
    path_text,
    prefixes,
    removals,
    written,
)
from cleanroom.code_gates.forwarding import load_target
from cleanroom.code_gates.names import Names, const_str, dotted_name, is_const
from cleanroom.code_gates.scopes import Function, Scopes
from cleanroom.code_gates.violation import Report
from cleanroom.code_gates.vocabulary import LOADER_DECIDES
from cleanroom.code_gates.walk import runs_before

# A binding: the scope that binds the dict (a function, lambda, comprehension, class for ``self.x``, the
# module) and its path there; a function's result is ``(the function, _RETURN, keys)``.
Binding = tuple[object, str, tuple[str, ...]]
Position = tuple[int, int]
_RETURN = "<return>"
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
        if key is not None and const_str(key) == KEY and not is_const(value, False, None)
    ]
    writes = written(nodes, calls)
    if not keys and not writes:
        return  # most modules: nothing to trace
    parents = nesting(nodes)
    anchors = {id(node): outermost(node, parents) for node, _, _ in keys}  # the literal -> (outermost, its keys)
    bound: dict[int, ast.AST] = {}  # outermost dict literal -> the dict at a path it is bound to or merged into
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        for target in assign.targets if isinstance(assign, ast.Assign) else [assign.target]:
            if assign.value is not None and dict_path(target) is not None:
                bound[id(assign.value)] = target
    copied_dicts = copies(nodes, calls)
    for source, target, _ in copied_dicts:
        if isinstance(source, ast.Dict):  # ``kw.update({"trust_remote_code": t})``
            bound[id(source)] = target
    owners = [dict_path(o) for _, o, _ in writes]
    owners += [_under(dict_path(bound[id(outer)]), ks) for outer, ks in anchors.values() if id(outer) in bound]
    flow = _Flow(scopes, nodes, names, helpers, {p for o in owners if o is not None for p in prefixes(o)})
    flow.key_dicts = {id(outer) for outer, _ in anchors.values()}
    flow.settle(copied_dicts)
    for call in calls:
        flow.call(call)
    flow.copies(copied_dicts)
    flow.removals(removals(nodes, calls))
    for node, key, value in keys:
        outer, under = anchors[id(node)]
        binding = flow.literal_binding(outer, under, bound.get(id(outer)))
        if binding is not None and flow.removed(binding, node):
            continue
        if is_const(value, True):
            add(key, "CR501", "trust_remote_code: True in a dict")
        elif id(outer) in flow.handed or (binding is not None and flow.passed(binding)):
            add(key, "CR501", "trust_remote_code in a dict that is passed on may be True", LOADER_DECIDES)
    for where, owner, value in writes:
        binding = flow.binding(owner)
        if binding is None or flow.removed(binding, where):
            continue
        name = path_text(binding[1], binding[2])
        if is_const(value, True):
            add(where, "CR501", f"trust_remote_code: True written into {name}")
        elif flow.passed(binding):
            add(where, "CR501", f"trust_remote_code written into {name}, which is passed on, may be True", LOADER_DECIDES)


def _under(path: Path | None, keys: tuple[str, ...]) -> Path | None:
    return None if path is None else (path[0], path[1] + keys)


#: What a call of a local function passes on (:meth:`_Flow._spread_params`): positional parameters as a call fills
#: them, the parameters that pass their value on, the named parameters, the ``*args`` and ``**kwargs`` names.
_Params = tuple[list[str], set[str], set[str], str | None, str | None]


class _Flow:
    """Where each dict binding is passed on and where the key is removed from it (see the module docstring). Only
    the paths in *relevant* (a dict that holds the key, one that holds it, or a copy of one) and the results of the
    functions that return one are traced: most calls pass none."""

    def __init__(
        self, scopes: Scopes, nodes: dict[type, list], names: Names, helpers: Mapping[str, str], relevant: set[Path]
    ) -> None:
        self.scopes = scopes
        self.nodes = nodes
        self.names = names
        self.helpers = helpers
        self.relevant = relevant
        self.key_dicts: set[int] = set()  # ids of the outermost dict literals that hold the key
        self.handed: set[int] = set()  # ids of those standing as an argument that passes them on
        self._returning: dict[int, Function] = {}  # id -> a function of this module that returns a traced dict
        self._returns: list[tuple[ast.Return, Function]] = []  # the returns of a traced dict
        self._passes: dict[Binding, list[ast.AST]] = {}
        self._removals: dict[Binding, list[ast.AST]] = {}
        self._defined: dict[str, list[Function]] | None = None
        self._params: dict[int, _Params] = {}

    def binding(self, owner: ast.AST, keys: tuple[str, ...] = ()) -> Binding | None:
        """The binding of the dict at *owner*'s path (``kw``, ``cfg["model"]``, ``cfg.model_kwargs``, ``self.kw``),
        with *keys* below it, where it stands: the scope that binds its first name (the class for
        ``self.``/``cls.``), the dotted name and the keys."""
        path = dict_path(owner)
        if path is None:
            return None
        dotted, own = path
        head = dotted.partition(".")[0]
        if head in ("self", "cls"):
            return self.scopes.enclosing_class(getattr(owner, "lineno", 1)), dotted, own + keys
        return self.scopes.lookup(head, owner)[0], dotted, own + keys

    def literal_binding(self, outer: ast.Dict, keys: tuple[str, ...], target: ast.AST | None) -> Binding | None:
        """The binding of a dict literal's key under *keys* of the outermost literal *outer*: bound to *target*,
        or returned by its function."""
        if target is not None:
            return self.binding(target, keys)
        returned = next((fn for ret, fn in self._returns if ret.value is outer), None)
        return None if returned is None else (returned, _RETURN, keys)

    def _traced(self, value: ast.AST | None) -> ast.AST | None:
        """The node to record for *value* as an argument, spread, copy or return: a dict literal holding the key,
        the traced dict it names or copies (``kw``, ``cfg["m"]``, ``dict(kw)``, ``kw.copy()``, ``{**kw}``), or a call
        of a function here that returns one; None for anything else."""
        if isinstance(value, ast.Dict) and id(value) in self.key_dicts:
            return value
        source = copied(value) if value is not None else None
        if isinstance(source, ast.Call):
            return source if self._returning and self._returners(source.func) else None
        return source if source is not None and dict_path(source) in self.relevant else None

    def _holders(self, node: ast.AST) -> list[Binding]:
        """The bindings a traced path or call stands for: the path's, or the result of each function it calls."""
        if isinstance(node, ast.Call):
            return [(fn, _RETURN, ()) for fn in self._returners(node.func)]
        binding = self.binding(node)
        return [] if binding is None else [binding]

    def settle(self, copied_dicts: list[Copy]) -> None:
        """The dicts worth tracing, to a fixed point: a copy of a traced dict (with every dict that holds it), and
        the functions of this module that return one (``return kw``, ``return build(t)``)."""
        returns = [
            (ret, fn)
            for ret in self.nodes.get(ast.Return, ())
            if ret.value is not None and (fn := self.scopes.enclosing(ret.lineno)) is not None
        ]
        changed = True
        while changed:
            changed = False
            for source, target, _ in copied_dicts:
                path = dict_path(target)
                if path is not None and path not in self.relevant and self._traced(source) is not None:
                    self.relevant.update(prefixes(path))
                    changed = True
            for ret, fn in returns:
                if id(fn) not in self._returning and self._traced(ret.value) is not None:
                    self._returning[id(fn)] = fn
                    changed = True
        self._returns = [(ret, fn) for ret, fn in returns if self._traced(ret.value) is not None]

    def call(self, call: ast.Call) -> None:
        """Record what *call* passes on: its spreads, and its arguments as its callee takes them."""
        if not any(self._traced(v) is not None for v in (*call.args, *(kw.value for kw in call.keywords))):
            return  # most calls: nothing traced
        for kw in call.keywords:
            if kw.arg is None:
                self._passes_at(kw.value)
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "update" and dict_path(func.value) is not None:
            return  # ``other.update(kw)``: kw is copied into other (:func:`~cleanroom.code_gates.dict_paths.copies`)
        defs = self._local_defs(func)
        if defs:  # a function of this module: the arguments its parameters pass on
            for fn, bound in defs:
                positional, passing, named, rest, extra = self._spread_params(fn, bound)
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
            for binding in self._holders(node):
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

    def _local_defs(self, func: ast.AST) -> list[tuple[Function, bool]]:
        """For a call of a function this module defines (``f``, or ``self.f``/``cls.f`` with ``f`` a method of the
        enclosing class): each ``def`` of that name, and whether a call binds its first parameter; else empty."""
        if isinstance(func, ast.Name) and func.id not in self.names.table:
            return [(fn, False) for fn in self._definitions().get(func.id, ())]
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("self", "cls"):
            owner = self.scopes.enclosing_class(func.lineno)
            methods = owner.body if owner is not None else ()
            return [(m, not _static(m)) for m in methods if isinstance(m, Function) and m.name == func.attr]
        return []

    def _returners(self, func: ast.AST) -> list[Function]:
        return [fn for fn, _ in self._local_defs(func) if id(fn) in self._returning]

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

    def copies(self, copied_dicts: list[Copy]) -> None:
        """A dict copied into another binding (see :func:`~cleanroom.code_gates.dict_paths.copies`), or returned
        by a function, is passed on where the copy or the function's result is (to a fixed point: a copy of a
        copy). The result of a public function or method (no leading ``_``, not nested in a function) is passed on
        where it is defined: other modules call it, unseen (fail closed)."""
        outer = {id(s) for scope in (self.scopes.module, *self.nodes.get(ast.ClassDef, ())) for s in getattr(scope, "body", ())}
        for fn in self._returning.values():
            if id(fn) in outer and not fn.name.startswith("_"):
                self._passes.setdefault((fn, _RETURN, ()), []).append(fn)
        pairs: list[tuple[Binding, Binding, ast.AST]] = []
        for source, target, where in copied_dicts:
            node = self._traced(source) if not isinstance(source, ast.Dict) else None
            copy = self.binding(target) if node is not None else None
            if node is not None and copy is not None:
                pairs.extend((held, copy, where) for held in self._holders(node) if held != copy)
        for ret, fn in self._returns:
            node = self._traced(ret.value)
            if node is not None and not isinstance(node, ast.Dict):
                pairs.extend((held, (fn, _RETURN, ()), ret) for held in self._holders(node))
        changed = True
        while changed:
            changed = False
            for held, copy, where in pairs:
                if self.passed(copy) and where not in self._passes.get(held, ()):
                    self._passes.setdefault(held, []).append(where)
                    changed = True

    def removals(self, found: list[tuple[ast.AST, ast.AST]]) -> None:
        """Record each removal of the key (see :func:`~cleanroom.code_gates.dict_paths.removals`) by binding."""
        for owner, where in found:
            binding = self.binding(owner)
            if binding is not None:
                self._removals.setdefault(binding, []).append(where)

    def passed(self, binding: Binding) -> bool:
        """The dict is passed on: itself, or a dict that holds it by keys."""
        scope, dotted, keys = binding
        return any((scope, d, k) in self._passes for d, k in prefixes((dotted, keys)))

    def removed(self, binding: Binding, where: ast.AST) -> bool:
        """The key written at *where* is removed from *binding* afterwards: some removal at that path follows it,
        and every pass of the dict (or of one holding it) after it runs only after a removal that follows it (a
        removal in one branch and a pass in another does not count)."""
        start = _position(where)
        after = [r for r in self._removals.get(binding, []) if _position(r) > start]
        if not after:
            return False
        scope, dotted, keys = binding
        for node in (n for d, k in prefixes((dotted, keys)) for n in self._passes.get((scope, d, k), [])):
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


def _holds_any(stmt: ast.stmt, positions: set[Position]) -> bool:
    start, end = _position(stmt), (stmt.end_lineno or stmt.lineno, stmt.end_col_offset or 0)
    return any(start <= p <= end for p in positions)


def _position(node: ast.AST) -> Position:
    return getattr(node, "lineno", 1), getattr(node, "col_offset", 0)


__all__ = ["check_dicts"]

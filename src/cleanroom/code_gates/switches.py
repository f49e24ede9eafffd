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
  ``cfg["model"] = a``, ``{**base, **a}``, ``base | a``, ``b |= a``: every dict merged in), read out of one
  (``m = cfg.get("model")`` is ``cfg["model"]``; a ``.get`` default is merged in; ``cfg.setdefault("model", {})`` is
  ``cfg["model"]`` and stores its default there, and ``m = cfg.setdefault(...)`` is that dict; ``(a | b)["model"]`` is
  ``a["model"]`` or ``b["model"]``; a key given as a module or local string constant is that string), or popped from one
  (``m = cfg.pop("model")``);
* returned by a function of this module (``return kw``) whose result is passed on where it is called
  (``load(p, **build(t))``, ``kw = build(t)`` then spread), or that is public (other modules call it, unseen).

So a record of the setting (a provenance, logging or results dict: dumped, printed, appended, sorted, or given
to a function here that only reads it) is not passed on. A dict literal standing as such an argument is passed
on where it stands, and so is one merged into such an argument (``f(**(base | {...}))``) or passed through one
unchanged (``f(**(cfg.get("m", {...}) or {}))``, ``dict(...)``, ``... if c else {}``). A merge or such a wrapper that
holds the key and stands where none of this follows it (in a tuple, a list, a walrus) is passed on (fail closed).

A key removed from the same path afterwards (``del kw["trust_remote_code"]``, ``cfg["m"].pop("trust_remote_code",
None)``), or a dict that holds it removed (``cfg.pop("m")``, ``del cfg["m"]``), where every later pass of the dict (or
of one holding it) runs after the removal (a removal in one branch does not clear a spread in another), is no longer
in it: silent, ``True`` included; a removal at another path clears nothing. ``dict(trust_remote_code=t)`` is a call,
judged with the call rules; a key spread from a dict literal into a call is this rule's alone (never reported twice).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import partial

from cleanroom.code_gates.callees import LocalCallees, callee_name, records_only
from cleanroom.code_gates.dict_paths import (
    KEY,
    ConstantKeys,
    Copy,
    Path,
    copied,
    copies,
    dict_path,
    key_of,
    named_keys,
    nesting,
    outermost,
    path_text,
    prefixes,
    removals,
    stores,
    written,
)
from cleanroom.code_gates.forwarding import load_target
from cleanroom.code_gates.names import Names, is_const
from cleanroom.code_gates.scopes import Function, Scopes
from cleanroom.code_gates.violation import Report
from cleanroom.code_gates.vocabulary import LOADER_DECIDES
from cleanroom.code_gates.walk import runs_before

# A binding: the scope that binds the dict (a function, lambda, comprehension, class for ``self.x``, the
# module) and its path there; a function's result is ``(the function, _RETURN, keys)``.
Binding = tuple[object, str, tuple[str, ...]]
Position = tuple[int, int]
_RETURN = "<return>"
_Trigger = Path | str  # what _Flow.settle waits on: a path (to trace its copies) or a callee's name (its calls)


def check_dicts(
    nodes: dict[type, list], calls: list[ast.Call], add: Report, scopes: Scopes, names: Names, helpers: Mapping[str, str]
) -> None:
    """The dict rule over one module (see the module docstring)."""
    with named_keys(ConstantKeys(scopes, nodes)):
        _check_dicts(nodes, calls, add, scopes, names, helpers)


def _check_dicts(
    nodes: dict[type, list], calls: list[ast.Call], add: Report, scopes: Scopes, names: Names, helpers: Mapping[str, str]
) -> None:
    spread = {id(kw.value) for call in calls for kw in call.keywords if kw.arg is None}
    keys = [
        (node, key, value)
        for node in nodes.get(ast.Dict, ())
        if id(node) not in spread  # ``f(**{...})``: checked as the call's keywords
        for key, value in zip(node.keys, node.values, strict=True)
        if key is not None and key_of(key) == KEY and not is_const(value, False, None)
    ]
    writes = written(nodes, calls)
    if not keys and not writes:
        return  # most modules: nothing to trace
    parents = nesting(nodes)
    anchors = {id(node): outermost(node, parents) for node, _, _ in keys}  # the literal -> (outermost, its keys)
    stored = stores(nodes, calls)
    # the outermost expression of a key-holding literal -> the dicts at the paths it is bound to or merged into
    bound: dict[int, list[ast.AST]] = {}  # several: ``a = b = {...}``, ``m = d.setdefault("m", {...})``
    for value, target, _ in stored:
        bound.setdefault(id(value), []).append(target)
    copied_dicts = copies(stored)
    # an outer merge or wrapper (``base | {...}``) where the flow does not follow it (a tuple, a walrus...): passed on
    followed = {*bound, *(id(r.value) for r in nodes.get(ast.Return, ())), *_arguments(calls)}
    unfollowed = {id(o) for o, _ in anchors.values() if not isinstance(o, ast.Dict) and id(o) not in followed}
    owners = [dict_path(o) for _, o, _ in writes]
    owners += [_under(dict_path(t), ks) for outer, ks in anchors.values() for t in bound.get(id(outer), ())]
    flow = _Flow(scopes, nodes, names, helpers, {p for o in owners if o is not None for p in prefixes(o)})
    flow.key_dicts = {id(outer) for outer, _ in anchors.values()}
    flow.settle(copied_dicts)
    for call in calls:
        flow.call(call)
    flow.copies(copied_dicts)
    flow.removals(removals(nodes, calls))
    for node, key, value in keys:
        outer, under = anchors[id(node)]
        bindings = [flow.literal_binding(outer, under, t) for t in bound.get(id(outer), (None,))]
        if all(b is not None and flow.removed(b, node) for b in bindings):  # removed at every path it is bound to
            continue
        if is_const(value, True):
            add(key, "CR501", "trust_remote_code: True in a dict")
        elif id(outer) in flow.handed or id(outer) in unfollowed or any(b is not None and flow.passed(b) for b in bindings):
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


def _arguments(calls: list[ast.Call]) -> set[int]:
    """ids of every argument of *calls*, positional, keyword or spread: the flow judges each where it stands."""
    return {id(a) for c in calls for a in (*c.args, *(kw.value for kw in c.keywords))}


def _under(path: Path | None, keys: tuple[str, ...]) -> Path | None:
    return None if path is None else (path[0], path[1] + keys)


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
        self.callees = LocalCallees(scopes, nodes, names)

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

    def literal_binding(self, outer: ast.AST, keys: tuple[str, ...], target: ast.AST | None) -> Binding | None:
        """The binding of a dict literal's key under *keys* of its outermost expression *outer*: bound to *target*,
        or returned by its function."""
        if target is not None:
            return self.binding(target, keys)
        returned = next((fn for ret, fn in self._returns if ret.value is outer), None)
        return None if returned is None else (returned, _RETURN, keys)

    def _traced(self, value: ast.AST | None) -> list[ast.AST]:
        """The nodes to record for *value* as an argument, spread, copy or return: the outermost expression of a
        dict literal holding the key (the literal, or a merge of it: ``base | {...}``), and :meth:`_sources`."""
        if value is None:
            return []
        return [value, *self._sources(value)] if id(value) in self.key_dicts else self._sources(value)

    def _sources(self, value: ast.AST | None) -> list[ast.AST]:
        """Each traced dict *value* names, copies or merges (``kw``, ``cfg["m"]``, ``cfg.get("m")``, ``dict(kw)``,
        ``kw.copy()``, ``{**a, **kw}``, ``a | kw``, ``cfg.pop("m")``), and each call of a function here that returns
        one; empty for anything else."""
        found: list[ast.AST] = []
        for source in copied(value) if value is not None else ():
            path = dict_path(source)
            if path is not None:
                if path in self.relevant:
                    found.append(source)
            elif isinstance(source, ast.Call) and self._returning and self._returners(source.func):
                found.append(source)
        return found

    def _holders(self, node: ast.AST) -> list[Binding]:
        """The bindings a traced path or call stands for: the path's, or the result of each function it calls."""
        binding = self.binding(node)
        if binding is None and isinstance(node, ast.Call):
            return [(fn, _RETURN, ()) for fn in self._returners(node.func)]
        return [] if binding is None else [binding]

    def settle(self, copied_dicts: list[Copy]) -> None:
        """The dicts worth tracing, to a fixed point: a copy of a traced dict (with every dict that holds it), and
        the functions of this module that return one (``return kw``, ``return build(t)``). A worklist: each copy and
        return waits on the paths and callee names of its sources, and is settled when one of them is traced."""
        returns = [
            (ret, fn)
            for ret in self.nodes.get(ast.Return, ())
            if ret.value is not None and (fn := self.scopes.enclosing(ret.lineno)) is not None
        ]
        waiting: dict[_Trigger, list[tuple[ast.AST, Path | Function]]] = {}
        todo: list[_Trigger] = list(self.relevant)
        for source, target, _ in copied_dicts:
            path = dict_path(target)
            if path is not None:
                self._wait(source, path, waiting, todo)
        for ret, fn in returns:
            self._wait(ret.value, fn, waiting, todo)
        while todo:
            trigger = todo.pop()
            kept: list[tuple[ast.AST, Path | Function]] = []
            for source, item in waiting.pop(trigger, ()):
                if _result(source) and not self._returners(source.func):  # type: ignore[attr-defined]
                    kept.append((source, item))  # another function of that name returns one, not this callee
                else:
                    self._settle(item, todo)
            if kept:
                waiting[trigger] = kept
        self._returns = [(ret, fn) for ret, fn in returns if self._traced(ret.value)]

    def _wait(
        self, value: ast.AST | None, item: Path | Function, waiting: dict[_Trigger, list], todo: list[_Trigger]
    ) -> None:
        """*item* (a path copied into, a function returning *value*) is traced once a source of *value* is: now
        for a key-holding literal, else when the source's path or its callee's name is (see :meth:`settle`)."""
        if value is not None and id(value) in self.key_dicts:
            self._settle(item, todo)
        for source in copied(value) if value is not None else ():
            trigger = callee_name(source.func) if _result(source) else dict_path(source)  # type: ignore[attr-defined]
            if trigger is not None:
                waiting.setdefault(trigger, []).append((source, item))

    def _settle(self, item: Path | Function, todo: list[_Trigger]) -> None:
        """Trace *item*: a path (with every dict that holds it) or a function's result."""
        if isinstance(item, tuple):
            new = [p for p in prefixes(item) if p not in self.relevant]
            self.relevant.update(new)
            todo.extend(new)
        elif id(item) not in self._returning:
            self._returning[id(item)] = item
            todo.append(item.name)

    def call(self, call: ast.Call) -> None:
        """Record what *call* passes on: its spreads, and its arguments as its callee takes them."""
        if not any(self._traced(v) for v in (*call.args, *(kw.value for kw in call.keywords))):
            return  # most calls: nothing traced
        for kw in call.keywords:
            if kw.arg is None:
                self._passes_at(kw.value)
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "update" and dict_path(func.value) is not None:
            return  # ``other.update(kw)``: kw is copied into other (:func:`~cleanroom.code_gates.dict_paths.copies`)
        if dict_path(call) is not None:
            return  # ``cfg.get("m", kw)``: a read; the default goes where its result does (``copied``)
        defs = self.callees.defs(func)
        if defs:  # a function of this module: the arguments its parameters pass on
            for fn, bound in defs:
                positional, passing, named, rest, extra = self.callees.params(fn, bound)
                for i, arg in enumerate(call.args):  # a surplus positional lands in *rest
                    if (positional[i] if i < len(positional) else rest) in passing:
                        self._passes_at(arg)
                for kw in call.keywords:  # a keyword no parameter names lands in **extra
                    if kw.arg is not None and (kw.arg if kw.arg in named else extra) in passing:
                        self._passes_at(kw.value)
        elif load_target(call, self.names, self.helpers) is not None or not records_only(func, self.names):
            for value in (*call.args, *(kw.value for kw in call.keywords if kw.arg is not None)):
                self._passes_at(value)

    def _passes_at(self, value: ast.AST) -> None:
        if id(value) in self.key_dicts:
            self.handed.add(id(value))
        for node in self._sources(value):
            for binding in self._holders(node):
                self._passes.setdefault(binding, []).append(node)

    def _returners(self, func: ast.AST) -> list[Function]:
        return [fn for fn, _ in self.callees.defs(func) if id(fn) in self._returning]

    def copies(self, copied_dicts: list[Copy]) -> None:
        """A dict copied into another binding (see :func:`~cleanroom.code_gates.dict_paths.copies`), or returned
        by a function, is passed on where the copy or the function's result is (to a fixed point: a copy of a
        copy). The result of a public function or method (no leading ``_``, not nested in a function) is passed on
        where it is defined: other modules call it, unseen (fail closed)."""
        outer = {id(s) for scope in (self.scopes.module, *self.nodes.get(ast.ClassDef, ())) for s in getattr(scope, "body", ())}
        for fn in self._returning.values():
            if id(fn) in outer and not fn.name.startswith("_"):
                self._passes.setdefault((fn, _RETURN, ()), []).append(fn)
        waiting: dict[Binding, list[tuple[Binding, ast.AST]]] = {}  # a binding -> the copies into it or under it
        for source, target, where in copied_dicts:
            nodes = self._sources(source)
            copy = self.binding(target) if nodes else None
            if copy is not None:
                sources = [h for n in nodes for h in self._holders(n) if h != copy]
                self._wait_copy(sources, copy, where, waiting)
        for ret, fn in self._returns:
            nodes = self._sources(ret.value)
            self._wait_copy([held for n in nodes for held in self._holders(n)], (fn, _RETURN, ()), ret, waiting)
        todo = list(self._passes)  # a worklist: each binding is settled once, when it is first passed on
        while todo:
            for held, where in waiting.pop(todo.pop(), ()):
                if held not in self._passes:
                    todo.append(held)
                if where not in self._passes.setdefault(held, []):
                    self._passes[held].append(where)

    @staticmethod
    def _wait_copy(held: list[Binding], copy: Binding, where: ast.AST, waiting: dict) -> None:
        """Each of *held* is passed on at *where* once *copy*, or a dict that holds it, is passed on."""
        scope, dotted, keys = copy
        for d, k in prefixes((dotted, keys)):
            waiting.setdefault((scope, d, k), []).extend((h, where) for h in held)

    def removals(self, found: list[tuple[ast.AST, str, ast.AST]]) -> None:
        """Record each removal of a key (see :func:`~cleanroom.code_gates.dict_paths.removals`) by the binding of the
        path it removes (``cfg.pop("model")`` removes ``cfg["model"]``)."""
        for owner, key, where in found:
            binding = self.binding(owner, (key,))
            if binding is not None:
                self._removals.setdefault(binding, []).append(where)

    def passed(self, binding: Binding) -> bool:
        """The dict is passed on: itself, or a dict that holds it by keys."""
        scope, dotted, keys = binding
        return any((scope, d, k) in self._passes for d, k in prefixes((dotted, keys)))

    def removed(self, binding: Binding, where: ast.AST) -> bool:
        """The key written at *where* into *binding* is removed afterwards: some removal of it or of a dict that
        holds it (``del kw["trust_remote_code"]``, ``cfg.pop("model")``) follows it, and every pass of the dict (or of
        one holding it) after it runs only after such a removal that follows it (a removal in one branch and a pass
        in another does not count)."""
        start = _position(where)
        scope, dotted, keys = binding
        removed_at = prefixes((dotted, (*keys, KEY)))
        after = [r for d, k in removed_at for r in self._removals.get((scope, d, k), []) if _position(r) > start]
        if not after:
            return False
        for node in (n for d, k in prefixes((dotted, keys)) for n in self._passes.get((scope, d, k), [])):
            at = _position(node)
            if at < start:
                continue  # before the write: it never holds the key there
            root = self.scopes.enclosing(at[0]) or self.scopes.module
            guards = {_position(r) for r in after if _position(r) < at}
            if root is None or not runs_before(root, at, partial(_holds_any, positions=guards)):
                return False
        return True


def _result(source: ast.AST) -> bool:
    """*source* (of :func:`~cleanroom.code_gates.dict_paths.copied`) is a call's result, not a read of a path."""
    return isinstance(source, ast.Call) and dict_path(source) is None


def _holds_any(stmt: ast.stmt, positions: set[Position]) -> bool:
    start, end = _position(stmt), (stmt.end_lineno or stmt.lineno, stmt.end_col_offset or 0)
    return any(start <= p <= end for p in positions)


def _position(node: ast.AST) -> Position:
    return getattr(node, "lineno", 1), getattr(node, "col_offset", 0)


__all__ = ["check_dicts"]

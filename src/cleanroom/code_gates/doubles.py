"""Code that handles a tokenizer's names without using a tokenizer: test doubles, mock set-up,
introspection, predicates and save-and-restore of a patched method.

Each class here was a false alarm on public training code (docs/gates-precision.md):

* a **test double** (``SimpleNamespace(chat_template=t)``, ``Mock()``, a local ``_FakeTokenizer``,
  an instance built with ``Cls.__new__(Cls)``, a local function that returns only doubles) is not a
  tokenizer: keywords given to its constructor and attributes written on a receiver bound to one by
  every binding in the same function set up the double. What is stored on a double is not a double:
  ``s = SimpleNamespace(tok=load())``, ``s.tok = load()``, ``a, s.tok = load()`` and ``for tok, p in ...``
  bind a real object, so writes on it are findings; only a mock's never-stored attributes (``m.tokenizer``
  on ``m = Mock()``) are mocks. The safety rules (5xx) still apply to doubles.
* **mock set-up and inspection** (``tok.apply_chat_template.return_value = x``,
  ``...apply_chat_template.assert_called_once()``) and **introspection** whose result is not the
  method (``inspect.getsource(Tok.apply_chat_template)``, ``inspect.signature(...)``) read a method
  without calling it; ``inspect.unwrap(X.from_pretrained)`` hands the method back and is a use.
* a **predicate** (``is_*``, ``has_*``, ``can_*``, ``should_*``) asked with a literal or a name
  (``can_load(load_in_4bit=True)``) answers a question; it sets nothing, unless a function of its
  name in the same module loads (then it is a load under a question's name). A predicate defined
  in another module is judged by its name alone (docs/gates-precision.md says so). (``trust_remote_code=``
  stays a finding: a predicate may load a config to answer.) ``self.subTest(load_in_4bit=True)``
  labels a sub-test.
* ``saved = AutoModel.from_pretrained`` used only to put the method back on the same class
  (``AutoModel.from_pretrained = saved``), and that put-back, restore the method; neither loads. Every
  other write of ``X.from_pretrained`` installs a patch that changes what loads: a finding.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from cleanroom.code_gates.names import Names, bound_pairs, dotted_name, reflective
from cleanroom.code_gates.scopes import Scopes
from cleanroom.code_gates.vocabulary import PIPELINES, is_loading_class

_DOUBLE_QUALS = frozenset(
    {"types.SimpleNamespace"}
    | {
        f"{mod}.{cls}"
        for mod in ("unittest.mock", "mock")
        for cls in (
            "Mock",
            "MagicMock",
            "NonCallableMock",
            "NonCallableMagicMock",
            "AsyncMock",
            "PropertyMock",
            "create_autospec",
        )
    }
)
_MOCKER_MAKERS = frozenset({"Mock", "MagicMock", "NonCallableMock", "NonCallableMagicMock", "AsyncMock"})
# A class the module itself defines under a test double's name: ``class _FakeTokenizer:``.
_FAKE_CLASS = re.compile(r"^_*(?:Fake|Dummy|Stub|Mock)(?:[A-Z0-9_]|$)")
_PREDICATE = re.compile(r"^_*(?:is|has|can|should)_")
# Attributes of a mock that configure or inspect it: ``m.apply_chat_template.return_value = x``.
_MOCK_ATTRS = frozenset(
    {"return_value", "side_effect", "call_args", "call_args_list", "call_count", "called", "mock_calls"}
    | {"reset_mock", "assert_called", "assert_not_called", "assert_any_call", "assert_has_calls"}
)


# ``inspect`` functions whose result describes a function and is never the function itself:
# ``inspect.unwrap(f)`` and ``inspect.getattr_static(C, "f")`` hand the method back, so they are a use.
_INTROSPECT = frozenset(
    {"signature", "getsource", "getsourcelines", "getsourcefile", "getfile", "getdoc", "getcomments"}
    | {"getfullargspec", "getargspec", "getmodule", "getmodulename"}
)
#: Kinds of test double: a mock makes any attribute it is asked for (another mock); a plain double
#: (``SimpleNamespace``, a fake class, ``Cls.__new__(Cls)``) holds only what was stored on it.
MOCK, PLAIN = "mock", "plain"


def _question(value: ast.AST) -> bool:
    """A keyword value in the question form: literals and names read (``True``, ``args.load_in_4bit``,
    ``kw["load_in_4bit"]``), no call made to compute it."""
    return not any(isinstance(n, ast.Call | ast.Lambda | ast.NamedExpr | ast.Await) for n in ast.walk(value))


class Doubles:
    """What a module does with names that are not a real tokenizer, model or load (see the module doc)."""

    def __init__(self, nodes: dict[type, list], names: Names, scopes: Scopes) -> None:
        self.names = names
        self.fakes = {c.name for c in nodes.get(ast.ClassDef, ()) if _FAKE_CLASS.match(c.name)}
        self.nodes = nodes
        self.scopes = scopes
        self.module = scopes.module
        self._bound: dict[int, dict[str, str | None]] = {}
        self._factories: dict[str, bool] = {}
        self._loaders: dict[str, bool] = {}
        # Reads that only configure a mock or are handed to ``inspect``: never a use of the method.
        self.inspected: set[int] = {
            id(a.value)
            for a in nodes.get(ast.Attribute, ())
            if a.attr in _MOCK_ATTRS or a.attr.startswith("assert_")
        }
        if any(q == "inspect" or q.startswith("inspect.") for q in names.table.values()):
            called = {id(call.func) for call in nodes.get(ast.Call, ())}
            for call in nodes.get(ast.Call, ()):
                qual = names.resolve(call.func)
                if qual is None or not qual.startswith("inspect.") or id(call) in called:
                    continue  # ``inspect.unwrap(X.from_pretrained)(p)``: the result is called, a use
                last = qual.rsplit(".", 1)[-1]
                if last in _INTROSPECT or last.startswith("is"):
                    self.inspected.update(id(a) for a in call.args)

    def double_kind(self, call: ast.AST) -> str | None:
        """:data:`MOCK` for ``Mock(...)``, ``mocker.MagicMock(...)``; :data:`PLAIN` for ``SimpleNamespace(...)``,
        ``_FakeTokenizer(...)``, ``Cls.__new__(Cls)`` and a local factory of doubles; None for anything else."""
        if not isinstance(call, ast.Call):
            return None
        func = call.func
        if isinstance(func, ast.Name) and func.id not in self.names.table:
            if func.id in self.fakes:
                return PLAIN
            if func.id in self.names.bound:
                return PLAIN if self._factory(func.id) else None
        if isinstance(func, ast.Attribute) and func.attr == "__new__":
            return PLAIN  # ``Trainer.__new__(Trainer)``: an instance built by hand, its __init__ skipped
        if (
            isinstance(func, ast.Attribute)
            and func.attr in _MOCKER_MAKERS
            and isinstance(func.value, ast.Name)
            and func.value.id == "mocker"
        ):
            return MOCK
        qual = self.names.resolve(func)
        if qual not in _DOUBLE_QUALS:
            return None
        return PLAIN if qual == "types.SimpleNamespace" else MOCK

    def is_double_call(self, call: ast.AST) -> bool:
        """``SimpleNamespace(...)``, ``Mock(...)``, ``mocker.MagicMock(...)``, ``_FakeTokenizer(...)``."""
        return self.double_kind(call) is not None

    def describes_only(self, call: ast.Call, value: ast.AST) -> bool:
        """The keyword ``k=value`` describes, it sets nothing: given to a test double's constructor, to
        unittest's ``self.subTest(load_in_4bit=True)`` (a sub-test's label), or asked of a predicate in
        the question form (a literal or a name) when no function of the predicate's name in this module
        loads (``def is_ready(p, load_in_4bit): return AutoModel.from_pretrained(...)`` is a load)."""
        if self.is_double_call(call):
            return True
        func = call.func
        last = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if last == "subTest":
            return True
        return _PREDICATE.match(last) is not None and _question(value) and not self._loads_locally(last)

    def holds_double(self, target: ast.Attribute) -> bool:
        """``tok.pad_token = x`` where the receiver ``tok`` (or ``self.tok``) is bound to a test double by
        every binding of it in the enclosing function. A receiver bound nowhere there is a double only
        when the longest bound prefix of it is a mock (``m = Mock(); m.tokenizer.pad_token = 0``: a
        mock's attributes are mocks); a plain double holds what was stored on it, so after
        ``s = SimpleNamespace(tok=load())`` or ``s.tok = load()``, ``s.tok.pad_token = x`` is a real write.
        A plain name the enclosing function does not bind is looked up where Python finds it: a closure's
        ``tok`` is the enclosing function's (``tok = MagicMock(); def inner(): tok.pad_token = x``)."""
        node: ast.AST = target.value
        key = dotted_name(node)
        if key is None:
            return False
        bound = self._doubles_in(self._home(key, node))
        if key in bound:
            return bound[key] is not None
        while isinstance(node, ast.Attribute):
            node = node.value
            key = dotted_name(node)
            if key is not None and key in bound:
                return bound[key] == MOCK
        return False

    def _home(self, key: str, at: ast.AST) -> ast.AST | None:
        """The function whose bindings decide the receiver *key* used at *at*: the one that binds its first name
        as Python looks it up (a closure's enclosing function), else the innermost function (``self.x``, a name
        of a lambda, comprehension or the module)."""
        innermost = self.scopes.enclosing(getattr(at, "lineno", 1))
        head = key.partition(".")[0]
        if innermost is None or head in ("self", "cls") or head in self._doubles_in(innermost):
            return innermost  # most writes: a parameter or a local of the function they stand in
        scope = self.scopes.lookup(head, at)[0]
        return scope if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef) else innermost

    def restore_only(self, read: ast.Attribute, assigns: dict[int, ast.Assign]) -> bool:
        """``saved = X.from_pretrained`` where every use of ``saved`` puts it back on the same receiver
        (``X.from_pretrained = saved``)."""
        stmt = assigns.get(id(read))
        if stmt is None or len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            return False
        name = stmt.targets[0].id
        scope = self.scopes.enclosing(read.lineno) or self.module
        uses = restores = 0
        for node in ast.walk(scope) if scope is not None else ():
            if isinstance(node, ast.Name) and node.id == name and type(node.ctx) is ast.Load:
                uses += 1
            elif (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Name)
                and node.value.id == name
                and all(self._same_method(t, read) for t in node.targets)
            ):
                restores += 1
        return uses > 0 and uses == restores

    def puts_back(self, target: ast.Attribute, value: ast.AST | None) -> bool:
        """``X.from_pretrained = saved`` where every binding of ``saved`` in the scope is a read of the same
        method (``saved = X.from_pretrained``): the method as it was, nothing patched. Any other write
        installs a patch. (The read that saved it is judged on its own: silent only when it is used for
        nothing but putting back, :meth:`restore_only`.)"""
        if not isinstance(value, ast.Name):
            return False
        scope = self.scopes.enclosing(target.lineno) or self.module
        stores = saves = 0
        for node in ast.walk(scope) if scope is not None else ():
            if isinstance(node, ast.Name) and node.id == value.id and type(node.ctx) is not ast.Load:
                stores += 1  # every binding: a loop, a tuple, ``del``, a save
            elif isinstance(node, ast.arg | ast.Global | ast.Nonlocal) and value.id in (
                getattr(node, "names", None) or [getattr(node, "arg", None)]
            ):
                return False  # a parameter or a name shared with another scope: whatever was passed
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == value.id
                and isinstance(node.value, ast.Attribute)
                and self._same_method(target, node.value)
            ):
                saves += 1
        return saves > 0 and saves == stores

    def _same_method(self, a: ast.AST, b: ast.Attribute) -> bool:
        """*a* and *b* name the same method on the same receiver (by spelling or by import)."""
        if not isinstance(a, ast.Attribute) or a.attr != b.attr:
            return False
        if ast.dump(a.value) == ast.dump(b.value):
            return True
        qual = self.names.resolve(a.value)
        return qual is not None and qual == self.names.resolve(b.value)

    def _loads_locally(self, name: str) -> bool:
        """A function (or method) of this module named *name* reads a ``from_pretrained`` or calls a
        loading class or ``transformers.pipeline``."""
        known = self._loaders.get(name)
        if known is None:
            known = any(
                (isinstance(node, ast.Attribute) and node.attr == "from_pretrained")
                or (isinstance(node, ast.Call) and self._loading_callee(node))
                for func in self.scopes.functions()
                if func.name == name
                for node in ast.walk(func)
            )
            self._loaders[name] = known
        return known

    def _loading_callee(self, call: ast.Call) -> bool:
        qual = self.names.resolve(call.func)
        return qual is not None and (qual in PIPELINES or is_loading_class(qual))

    def _factory(self, name: str) -> bool:
        """``def _make_config(**kw): return SimpleNamespace(**kw)``: the module's one function of that
        name returns a test double from every ``return`` (and yields nothing)."""
        known = self._factories.get(name)
        if known is not None:
            return known
        self._factories[name] = False  # a factory returning its own call is no factory
        defs = [f for f in self.scopes.functions() if f.name == name]
        returns: list[ast.Return] = []
        stack: list[ast.AST] = list(defs[0].body) if len(defs) == 1 else []
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Yield | ast.YieldFrom):
                return False
            if isinstance(node, ast.Return):
                returns.append(node)
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
                stack.extend(ast.iter_child_nodes(node))
        verdict = bool(returns) and all(r.value is not None and self.is_double_call(r.value) for r in returns)
        self._factories[name] = verdict
        return verdict

    def _doubles_in(self, scope: ast.AST | None) -> dict[str, str | None]:
        """Dotted name bound in *scope* -> the kind of test double every binding of it holds, None when
        some binding may hold a real object (a parameter, a loop variable, an unpacked result, a call).

        Bindings: assignments (a tuple target element by element against a tuple of the same length,
        else every name in it real), ``for`` targets, parameters, ``with ... as m`` (``patch(...)``
        gives a mock), ``setattr(x, "a", v)`` (binds ``x.a``), and each keyword of a double's
        constructor (``s = SimpleNamespace(tok=load())`` binds ``s.tok`` to the load)."""
        if scope is None:
            return {}
        cached = self._bound.get(id(scope))
        if cached is not None:
            return cached
        verdict: dict[str, str | None] = {}
        for node, own in _walk_scoped(scope):
            pairs: list[tuple[ast.AST, ast.AST | None]] = []
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets]
            elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
                pairs = [(node.target, node.value)]
            elif isinstance(node, ast.For | ast.AsyncFor):
                pairs = [(node.target, None)]  # a loop variable: whatever the loop yields
            elif isinstance(node, ast.comprehension):  # its plain names are its own scope's (Python 3)
                pairs = [(node.target, None)]
                own = False
            elif isinstance(node, ast.arg):
                if own:
                    verdict[node.arg] = None  # a parameter: whatever the caller passes
            elif isinstance(node, ast.Global | ast.Nonlocal) and not own:
                for name in node.names:  # a nested function stores into this scope's name: unknown
                    _bind(verdict, name, None)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                made = node.context_expr
                qual = self.names.resolve(made.func) if isinstance(made, ast.Call) else None
                patched = qual is not None and qual.startswith(("unittest.mock.patch", "mock.patch"))
                pairs = [(node.optional_vars, made)]
                if patched:  # ``with patch(...) as m``: m is a MagicMock
                    pairs = []
                    key = dotted_name(node.optional_vars)
                    if own or (key is not None and "." in key):
                        _bind(verdict, key, MOCK)
            elif isinstance(node, ast.Call):
                access = reflective(node, self.names)
                if access is not None and access[0] == "set" and len(node.args) > access[2] + 1:
                    owner = dotted_name(node.args[0]) if access[2] == 1 else None
                    if owner is not None:
                        _bind(verdict, f"{owner}.{access[1]}", self.double_kind(node.args[access[2] + 1]))
            for target, value in pairs:
                self._bind_target(verdict, target, value, own)
        self._bound[id(scope)] = verdict
        return verdict

    def _bind_target(
        self, verdict: dict[str, str | None], target: ast.AST, value: ast.AST | None, own: bool = True
    ) -> None:
        """Record *target* = *value* in *verdict* (see :meth:`_doubles_in`). Where not *own* (inside a nested
        function, lambda or a comprehension's target) a plain name is that scope's own and is skipped; an
        attribute (``self.tok``) is the object's, bound wherever it is stored."""
        for key, element in bound_pairs(target, value):
            if own or "." in key:
                self._bind_key(verdict, key, element)

    def _bind_key(self, verdict: dict[str, str | None], key: str, value: ast.AST | None) -> None:
        """Record ``key = value`` and, for a double's constructor, each keyword it stores (``key.kw``)."""
        kind = self.double_kind(value) if value is not None else None
        _bind(verdict, key, kind)
        if kind is not None and isinstance(value, ast.Call):
            for kw in value.keywords:
                if kw.arg is not None:
                    _bind(verdict, f"{key}.{kw.arg}", self.double_kind(kw.value))


def _walk_scoped(scope: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """(node, own) for every node under *scope*; *own* is False inside a nested function, class or lambda, whose
    plain names (parameters, assignments) are its own scope's, not *scope*'s."""
    stack = [(child, True) for child in ast.iter_child_nodes(scope)]
    while stack:
        node, own = stack.pop()
        yield node, own
        inner = own and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef)
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def _bind(verdict: dict[str, str | None], key: str | None, kind: str | None) -> None:
    """One more binding of *key*: a double only while every binding is one, a mock only while every one is."""
    if key is None:
        return
    if key not in verdict:
        verdict[key] = kind
        return
    old = verdict[key]
    verdict[key] = None if old is None or kind is None else (MOCK if old == kind == MOCK else PLAIN)

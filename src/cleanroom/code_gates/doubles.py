"""Code that handles a tokenizer's names without using a tokenizer: test doubles, mock set-up,
introspection, predicates and save-and-restore of a patched method.

Each class here was a false alarm on public training code (docs/gates-precision.md):

* a **test double** (``SimpleNamespace(chat_template=t)``, ``Mock()``, a local ``_FakeTokenizer``,
  an instance built with ``Cls.__new__(Cls)``, a local function that returns only doubles) is not a tokenizer: keywords given to its constructor and attributes written on a name bound to
  one in the same function set up the double. The safety rules (5xx) still apply to it.
* **mock set-up and inspection** (``tok.apply_chat_template.return_value = x``,
  ``...apply_chat_template.assert_called_once()``) and **introspection**
  (``inspect.getsource(Tok.apply_chat_template)``) read a method without calling it.
* a **predicate** (``is_*``, ``has_*``, ``can_*``, ``should_*``) answers a question about the
  ``chat_template=`` or ``load_in_4bit=`` it is given; it sets nothing. (``trust_remote_code=``
  stays a finding: a predicate may load a config to answer.) ``self.subTest(load_in_4bit=True)``
  labels a sub-test.
* ``saved = AutoModel.from_pretrained`` used only to put the method back
  (``AutoModel.from_pretrained = saved``), and the write itself, patch a method; neither loads.
"""

from __future__ import annotations

import ast
import re

from cleanroom.code_gates.names import Names, _dotted

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


class Doubles:
    """What a module does with names that are not a real tokenizer, model or load (see the module doc)."""

    def __init__(self, nodes: dict[type, list], names: Names) -> None:
        self.names = names
        self.fakes = {c.name for c in nodes.get(ast.ClassDef, ()) if _FAKE_CLASS.match(c.name)}
        self.nodes = nodes
        self._functions: list[ast.FunctionDef | ast.AsyncFunctionDef] | None = None
        self.module = nodes.get(ast.Module, [None])[0]
        self._bound: dict[int, dict[str, bool]] = {}
        self._factories: dict[str, bool] = {}
        # Reads that only configure a mock or are handed to ``inspect``: never a use of the method.
        self.inspected: set[int] = {
            id(a.value)
            for a in nodes.get(ast.Attribute, ())
            if a.attr in _MOCK_ATTRS or a.attr.startswith("assert_")
        }
        if any(q == "inspect" or q.startswith("inspect.") for q in names.table.values()):
            for call in nodes.get(ast.Call, ()):
                qual = names.resolve(call.func)
                if qual is not None and qual.startswith("inspect."):
                    self.inspected.update(id(a) for a in call.args)

    def is_double_call(self, call: ast.AST) -> bool:
        """``SimpleNamespace(...)``, ``Mock(...)``, ``mocker.MagicMock(...)``, ``_FakeTokenizer(...)``."""
        if not isinstance(call, ast.Call):
            return False
        func = call.func
        if isinstance(func, ast.Name) and func.id not in self.names.table:
            if func.id in self.fakes:
                return True
            if func.id in self.names.bound:
                return self._factory(func.id)
        if isinstance(func, ast.Attribute) and func.attr == "__new__":
            return True  # ``Trainer.__new__(Trainer)``: an instance built by hand, its __init__ skipped
        if (
            isinstance(func, ast.Attribute)
            and func.attr in _MOCKER_MAKERS
            and isinstance(func.value, ast.Name)
            and func.value.id == "mocker"
        ):
            return True
        return self.names.resolve(func) in _DOUBLE_QUALS

    def describes_only(self, call: ast.Call) -> bool:
        """The call's keywords describe, they set nothing: a test double's constructor, a predicate, or
        unittest's ``self.subTest(load_in_4bit=True)``, whose keywords label a sub-test."""
        func = call.func
        last = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        return self.is_double_call(call) or _PREDICATE.match(last) is not None or last == "subTest"

    def holds_double(self, target: ast.Attribute) -> bool:
        """``tok.pad_token = x`` where ``tok`` (or ``self.tok``, a prefix of the chain) is bound to a test
        double by every assignment to it in the enclosing function. The longest prefix bound there
        decides: after ``t = T.__new__(T); t.tok = load()``, ``t.tok.pad_token = x`` is a real write."""
        bound = self._doubles_in(self._enclosing(target.lineno))
        node: ast.AST = target.value
        while isinstance(node, ast.Attribute | ast.Name):
            key = _dotted(node)
            if key is not None and key in bound:
                return bound[key]
            if not isinstance(node, ast.Attribute):
                break
            node = node.value
        return False

    def restore_only(self, read: ast.Attribute, assigns: dict[int, ast.Assign]) -> bool:
        """``saved = X.from_pretrained`` where every use of ``saved`` puts it back (``X.from_pretrained = saved``)."""
        stmt = assigns.get(id(read))
        if stmt is None or len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            return False
        name = stmt.targets[0].id
        scope = self._enclosing(read.lineno) or self.module
        uses = restores = 0
        for node in ast.walk(scope) if scope is not None else ():
            if isinstance(node, ast.Name) and node.id == name and type(node.ctx) is ast.Load:
                uses += 1
            elif (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Name)
                and node.value.id == name
                and all(isinstance(t, ast.Attribute) and t.attr == read.attr for t in node.targets)
            ):
                restores += 1
        return uses > 0 and uses == restores

    def _factory(self, name: str) -> bool:
        """``def _make_config(**kw): return SimpleNamespace(**kw)``: the module's one function of that
        name returns a test double from every ``return`` (and yields nothing)."""
        known = self._factories.get(name)
        if known is not None:
            return known
        self._factories[name] = False  # a factory returning its own call is no factory
        defs = [f for f in self._functions_by_line() if f.name == name]
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

    def _functions_by_line(self) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        """The module's functions, outer before inner; sorted on first use: most modules never need it."""
        if self._functions is None:
            self._functions = sorted(
                (f for t in (ast.FunctionDef, ast.AsyncFunctionDef) for f in self.nodes.get(t, ())),
                key=lambda f: (f.lineno, -(f.end_lineno or f.lineno)),
            )
        return self._functions

    def _enclosing(self, line: int) -> ast.AST | None:
        """The innermost function whose lines hold *line*, or None at module level."""
        found = None
        for func in self._functions_by_line():
            if func.lineno > line:
                break
            if line <= (func.end_lineno or func.lineno):
                found = func
        return found

    def _doubles_in(self, scope: ast.AST | None) -> dict[str, bool]:
        """Dotted name bound in *scope* -> whether every binding is a test double (``with patch(...) as m`` too)."""
        if scope is None:
            return {}
        cached = self._bound.get(id(scope))
        if cached is not None:
            return cached
        verdict: dict[str, bool] = {}
        for node in ast.walk(scope):
            pairs: list[tuple[ast.AST, ast.AST]] = []
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets]
            elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
                pairs = [(node.target, node.value)]
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                pairs = [(node.target, node.iter)]  # a loop variable: whatever the loop yields
            elif isinstance(node, ast.arg):
                verdict[node.arg] = False  # a parameter: whatever the caller passes
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                made = node.context_expr
                qual = self.names.resolve(made.func) if isinstance(made, ast.Call) else None
                pairs = [(node.optional_vars, made)]
                if qual is not None and qual.startswith(("unittest.mock.patch", "mock.patch")):
                    pairs = []  # ``with patch(...) as m``: m is a MagicMock
                    key = _dotted(node.optional_vars)
                    if key is not None:
                        verdict[key] = verdict.get(key, True)
            for target, value in pairs:
                key = _dotted(target)
                if key is not None:
                    verdict[key] = verdict.get(key, True) and self.is_double_call(value)
        self._bound[id(scope)] = verdict
        return verdict

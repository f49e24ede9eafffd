"""The AST checker: one file's source in, the violations it contains out.

Why an AST and not grep: a grep for ``chat_template = None`` matches comments, strings and
docstrings (false alarms) and misses ``setattr(tok, "chat_template", None)``, ``tok.chat_template=None``
or ``from transformers import AutoModelForCausalLM as M; M.from_pretrained(...)`` (misses). Here
only code is looked at, and names are resolved through a per-module import table:

* ``import transformers as tf`` binds ``tf`` → ``transformers``;
* ``from transformers import AutoTokenizer as T`` binds ``T`` → ``transformers.AutoTokenizer``;
* ``M = tf.AutoModelForCausalLM`` (a plain assignment of a resolved name) binds ``M`` too;
* ``getattr(tf, "AutoModel")`` and ``importlib.import_module("transformers")`` resolve as well.

The table is flow-insensitive (built from every import and assignment in the module, functions
included): scripts import inside ``main()`` as often as at the top. Attribute rules
(``.chat_template = ...``, ``.apply_chat_template``, ``.eos_token = ...``) apply to an object of
any name, since the object's type is not known statically.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from types import CodeType

from cleanroom.gates.rules import RULES_BY_ID

# Libraries whose from_pretrained loads a model or tokenizer (CR101).
_LOAD_ROOTS = frozenset({"transformers", "trl", "peft", "unsloth", "optimum", "auto_gptq", "awq"})
_LOAD_SUFFIXES = (
    "ForCausalLM",
    "LMHeadModel",
    "Tokenizer",
    "TokenizerFast",
    "TokenizerBase",
    "PreTrainedModel",
)
_LOAD_NAMES = frozenset({"FastLanguageModel", "FastModel", "PreTrainedTokenizerFast", "PreTrainedTokenizer"})
_PIPELINES = frozenset({"transformers.pipeline", "transformers.pipelines.pipeline"})
_CHAT_ATTRS = frozenset({"chat_template", "default_chat_template"})
_SPECIAL_ATTRS = frozenset(
    {"bos_token", "eos_token", "pad_token", "bos_token_id", "eos_token_id", "pad_token_id"}
)
_MUTATORS = frozenset({"update", "pop", "popitem", "clear", "setdefault", "__setitem__", "__delitem__"})
_QUANT_KWARGS = frozenset({"load_in_4bit", "load_in_8bit"})
_TORCH_LOAD = frozenset({"torch.load", "torch.serialization.load"})
_PICKLE_LOADS = frozenset(
    f"{mod}.{fn}"
    for mod in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
    for fn in ("load", "loads", "Unpickler")
) | {"joblib.load", "pandas.read_pickle", "torch.serialization.pickle.load"}
_NUMPY_LOAD = frozenset({"numpy.load"})


# Every rule needs one of these identifiers in the compiled code: as an attribute or global name
# (``co_names``), a keyword-argument name or a string constant (``co_consts``). Comments never reach
# a code object and docstrings are never *equal* to an identifier, so a module whose code objects
# mention none of them cannot violate a code rule and needs no Python AST: building it is most of
# the cost per file. (CPython keeps the names of unreachable code in ``co_names`` too; a test pins it.)
TRIGGER_NAMES = frozenset(
    {"from_pretrained", "pipeline", "apply_chat_template", "add_special_tokens", "BitsAndBytesConfig"}
    | _CHAT_ATTRS
    | _SPECIAL_ATTRS
    | _QUANT_KWARGS
    | {"trust_remote_code", "load", "loads", "Unpickler", "read_pickle", "allow_pickle"}
)


def needs_ast(code: CodeType) -> bool:
    """True when the compiled module (or any nested function, class, lambda) mentions a trigger name."""
    stack = [code]
    while stack:
        current = stack.pop()
        if not TRIGGER_NAMES.isdisjoint(current.co_names):
            return True
        for const in current.co_consts:
            if type(const) is CodeType:
                stack.append(const)
            elif type(const) is str:
                if const in TRIGGER_NAMES:
                    return True
            elif type(const) is tuple and not TRIGGER_NAMES.isdisjoint(const):
                return True
    return False


@dataclass(frozen=True)
class Violation:
    """One finding: ``path:line:col RULE message`` (line and column 1-based, as editors count).

    ``end_line`` is the last line of the flagged node (0: the node is on ``line`` alone); a waiver on
    any line from ``line`` to ``end_line`` covers the finding.
    """

    path: str
    line: int
    col: int
    rule: str
    message: str
    end_line: int = 0

    @property
    def last_line(self) -> int:
        return max(self.line, self.end_line)

    def format(self) -> str:
        return f"{self.path}:{self.line}:{self.col} {self.rule} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "rule": self.rule,
            "message": self.message,
            "end_line": self.last_line,
        }


def _const_str(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class _Names:
    """The module's import table: local name → qualified dotted name."""

    def __init__(self, nodes: dict[type, list]) -> None:
        self.table: dict[str, str] = {}
        self.star: str | None = None
        for node in nodes.get(ast.Import, ()):
            for alias in node.names:
                if alias.asname:
                    self.table[alias.asname] = alias.name
                else:
                    root = alias.name.split(".", 1)[0]
                    self.table[root] = root
        for node in nodes.get(ast.ImportFrom, ()):
            if node.level or not node.module:
                continue  # relative imports are the user's own code
            for alias in node.names:
                if alias.name == "*":
                    self.star = self.star or node.module
                else:
                    self.table[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        assigns = [
            n for n in nodes.get(ast.Assign, ()) if len(n.targets) == 1 and type(n.targets[0]) is ast.Name
        ]
        bound = {
            n.name for t in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef) for n in nodes.get(t, ())
        }
        self.bound = bound
        # Two rounds resolve chains such as ``tf = transformers; M = tf.AutoModel``.
        for _ in range(2):
            for node in assigns:
                name = node.targets[0].id  # type: ignore[attr-defined]
                qual = self.resolve(node.value)
                if qual is not None and self.table.get(name) != qual:
                    self.table[name] = qual

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted name *node* refers to, or None when it is not an imported name."""
        if isinstance(node, ast.Name):
            qual = self.table.get(node.id)
            if qual is None and self.star is not None and node.id not in self.bound:
                return f"{self.star}.{node.id}"
            return qual
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base is not None else None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2:
                attr = _const_str(node.args[1])
                base = self.resolve(node.args[0])
                return f"{base}.{attr}" if base is not None and attr is not None else None
            if (isinstance(func, ast.Name) and func.id == "__import__") or self.resolve(
                func
            ) == "importlib.import_module":
                return _const_str(node.args[0])
        return None


def _getattr_name(node: ast.AST) -> str | None:
    """``"x"`` for ``getattr(obj, "x")`` / ``setattr(obj, "x", v)`` / ``delattr(obj, "x")`` calls."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "setattr", "delattr")
        and len(node.args) >= 2
    ):
        return _const_str(node.args[1])
    return None


def _attr_name(node: ast.AST) -> str | None:
    """The attribute *node* reads: ``obj.x`` and ``getattr(obj, "x")`` both give ``"x"``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
        return _getattr_name(node)
    return None


def _is_loading_class(qual: str) -> bool:
    parts = qual.split(".")
    if parts[0] not in _LOAD_ROOTS or len(parts) < 2:
        return False
    last = parts[-1]
    return last.startswith("Auto") or last.endswith(_LOAD_SUFFIXES) or last in _LOAD_NAMES


def _keywords(call: ast.Call) -> Iterator[tuple[str, ast.AST, ast.AST]]:
    """(name, value, node for the position) for ``k=v`` and for ``**{"k": v}`` literal keys.

    ``**dict(k=v)`` needs no special case: the inner ``dict(...)`` call is checked on its own.
    """
    for kw in call.keywords:
        if kw.arg is not None:
            yield kw.arg, kw.value, kw
        elif isinstance(kw.value, ast.Dict):
            for key, value in zip(kw.value.keys, kw.value.values, strict=True):
                name = _const_str(key) if key is not None else None
                if name is not None:
                    yield name, value, key  # type: ignore[misc]


def _is_const(node: ast.AST, *values: object) -> bool:
    return isinstance(node, ast.Constant) and any(node.value is v for v in values)


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


def _collect(tree: ast.AST) -> dict[type, list]:
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


def check_tree(tree: ast.AST, path: str) -> list[Violation]:
    """Every violation in a parsed module (before waivers and loader exemptions)."""
    nodes = _collect(tree)
    names = _Names(nodes)
    found: list[Violation] = []

    def add(node: ast.AST, rule: str, what: str) -> None:
        fix = RULES_BY_ID[rule].fix
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        end = getattr(node, "end_lineno", None) or line
        found.append(Violation(path, line, col, rule, f"{what}; {fix}", end))

    for node in nodes.get(ast.Attribute, ()):
        if node.attr == "apply_chat_template":
            add(node, "CR202", "apply_chat_template used outside the loader")
        elif type(node.ctx) is not ast.Load:
            if node.attr in _CHAT_ATTRS:
                verb = "assigned" if type(node.ctx) is ast.Store else "deleted"
                add(node, "CR201", f"{node.attr} {verb} outside the loader")
            elif node.attr in _SPECIAL_ATTRS:
                add(node, "CR302", f"{node.attr} assigned outside the loader")
    for node in nodes.get(ast.Subscript, ()):
        if type(node.ctx) is ast.Load:
            continue
        key = _const_str(node.slice)
        if key in _CHAT_ATTRS or _attr_name(node.value) in _CHAT_ATTRS:
            add(
                node,
                "CR201",
                f"{key or _attr_name(node.value)} modified through a subscript outside the loader",
            )
        elif key in _SPECIAL_ATTRS:
            add(node, "CR302", f"{key!r} written through a subscript outside the loader")
    for node in nodes.get(ast.Call, ()):
        _check_call(node, names, add)
    return found


def _check_call(node: ast.Call, names: _Names, add) -> None:  # type: ignore[no-untyped-def]
    func = node.func
    func_attr = _attr_name(func)
    loads = False  # a from_pretrained()/pipeline() call: a non-literal trust_remote_code is suspect here
    # getattr(obj, "x") itself: only apply_chat_template is reported at the read.
    direct = _getattr_name(node)
    if direct is not None and isinstance(func, ast.Name):
        if func.id == "getattr" and direct == "apply_chat_template":
            add(node, "CR202", "apply_chat_template fetched with getattr outside the loader")
        elif func.id in ("setattr", "delattr") and direct in _CHAT_ATTRS:
            add(node, "CR201", f"{func.id}(..., {direct!r}) outside the loader")
        elif func.id in ("setattr", "delattr") and direct in _SPECIAL_ATTRS:
            add(node, "CR302", f"{func.id}(..., {direct!r}) outside the loader")
        return
    if func_attr == "from_pretrained":
        receiver = func.value if isinstance(func, ast.Attribute) else func.args[0]  # type: ignore[attr-defined]
        qual = names.resolve(receiver)
        if qual is not None and _is_loading_class(qual):
            loads = True
            add(node, "CR101", f"{qual}.from_pretrained() outside the loader")
    elif func_attr in _MUTATORS and isinstance(func, ast.Attribute):
        if _attr_name(func.value) in _CHAT_ATTRS:
            add(node, "CR201", f"{_attr_name(func.value)}.{func_attr}() outside the loader")
        elif func_attr == "pop" and node.args and _const_str(node.args[0]) in _CHAT_ATTRS:
            add(node, "CR201", f"pop({_const_str(node.args[0])!r}) outside the loader")
        elif func_attr == "update" and node.args and isinstance(node.args[0], ast.Dict):
            keys = {_const_str(k) for k in node.args[0].keys if k is not None}
            if keys & _CHAT_ATTRS:
                add(node, "CR201", "update() of a chat_template key outside the loader")
    elif func_attr == "add_special_tokens" and isinstance(func, ast.Attribute):
        add(node, "CR302", "add_special_tokens() called outside the loader")
    qual = names.resolve(func)
    is_bnb = False
    if qual is not None:
        last = qual.rsplit(".", 1)[-1]
        if qual in _PIPELINES:
            loads = True
            add(node, "CR102", f"{qual}() outside the loader")
        elif last == "BitsAndBytesConfig":
            is_bnb = True
            add(node, "CR401", f"{qual}() built outside the loader")
        elif qual in _TORCH_LOAD:
            if not any(k == "weights_only" and _is_const(v, True) for k, v, _ in _keywords(node)):
                add(node, "CR502", f"{qual}() without weights_only=True")
        elif qual in _PICKLE_LOADS:
            add(node, "CR503", f"{qual}() unpickles")
        elif qual in _NUMPY_LOAD:
            for k, v, where in _keywords(node):
                if k == "allow_pickle" and not _is_const(v, False, None):
                    add(where, "CR503", "numpy.load(allow_pickle=...) unpickles")
    for key, value, where in _keywords(node):
        if key == "add_special_tokens":
            add(where, "CR301", "add_special_tokens= passed outside the loader")
        elif key == "trust_remote_code" and _is_const(value, True):
            add(where, "CR501", "trust_remote_code=True")
        elif key == "trust_remote_code" and loads and not _is_const(value, False, None):
            add(where, "CR501", "trust_remote_code passed a value that may be True to a loading call")
        elif key in _CHAT_ATTRS:
            add(where, "CR201", f"{key}= passed outside the loader")
        elif key in _QUANT_KWARGS and not is_bnb and not _is_const(value, False, None):
            add(where, "CR401", f"{key}= passed outside the loader")

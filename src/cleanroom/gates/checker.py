"""The AST checker: one file's source in, the violations it contains out.

Why an AST and not grep: a grep for ``chat_template = None`` matches comments, strings and
docstrings (false alarms) and misses ``setattr(tok, "chat_template", None)``, ``tok.chat_template=None``
or ``from transformers import AutoModelForCausalLM as M; M.from_pretrained(...)`` (misses). Here
only code is looked at, and names are resolved through a per-module import table:

* ``import transformers as tf`` binds ``tf`` → ``transformers``;
* ``from transformers import AutoTokenizer as T`` binds ``T`` → ``transformers.AutoTokenizer``
  (relative imports too, as ``.hf.AutoTokenizer``: a re-export is still the class);
* an assignment of a resolved name binds its target: ``M = tf.AutoModelForCausalLM``,
  ``M, T = AutoModelForCausalLM, AutoTokenizer``, ``K: type = AutoModelForCausalLM``,
  ``(M := ...)``, and dotted targets such as ``self.cls = AutoModelForCausalLM`` (class-body
  attributes also bind ``self.NAME``, ``cls.NAME`` and ``Class.NAME``);
* ``getattr(tf, "AutoModel")`` and ``importlib.import_module("transformers")`` resolve as well.

The table is flow-insensitive (built from every import and assignment in the module, functions
included): scripts import inside ``main()`` as often as at the top. A loading class is recognised
by its name wherever it was imported from (``Auto*``, ``*ForCausalLM``, ``*Tokenizer*``, ...), so
a lab's re-export is caught; reading ``.from_pretrained`` on one is a violation even uncalled
(``load = AutoModelForCausalLM.from_pretrained``, ``partial(AutoTokenizer.from_pretrained, p)``).
Attribute rules (``.chat_template = ...``, ``.apply_chat_template``, ``.eos_token = ...``) apply to
an object of any name, since the object's type is not known statically; ``setattr`` and friends
count in every spelling (``builtins.setattr``, ``object.__setattr__(t, ...)``, ``t.__setattr__(...)``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from cleanroom.gates.rules import RULES_BY_ID

# Class names whose from_pretrained loads a model or tokenizer (CR101), from whichever module.
_AUTO_CLASS = re.compile(r"Auto[A-Z]")
_LOAD_SUFFIXES = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "PreTrainedModel")
_LOAD_NAMES = frozenset({"FastLanguageModel", "FastModel"})
# Any name imported from these libraries is a loading class (``getattr(transformers, name)``, a
# model class with a suffix no list has, ``PeftModel``), except the config classes (CR103).
_LOAD_LIBRARIES = frozenset({"transformers", "peft", "unsloth", "trl"})
_FOR_SUFFIX = re.compile(r"For[A-Z][A-Za-z0-9]*$")  # ...ForCausalLM, ...ForBlockDiffusion
_CONFIG_SUFFIXES = ("Config", "Configuration")
# Well-known helpers that do a forbidden thing inside (qualified name -> rule). A helper matches
# any qualified name with the same top-level package and the same last part
# (``trl.models.utils.setup_chat_format``); ``[tool.cleanroom.gates] helpers`` adds to it.
HELPERS: dict[str, str] = {
    "trl.setup_chat_format": "CR201",
    "trl.clone_chat_template": "CR201",
    "trl.maybe_apply_chat_template": "CR202",
    "trl.apply_chat_template": "CR202",
    "trl.get_quantization_config": "CR401",
    "vllm.LLM": "CR101",
    "vllm.LLMEngine": "CR101",
    "vllm.AsyncLLMEngine": "CR101",
    "vllm.EngineArgs": "CR101",
    "vllm.AsyncEngineArgs": "CR101",
}
_HELPER_WHY = {
    "CR101": "loads a model",
    "CR201": "writes the chat template (and bos/eos/pad, resizing the embeddings)",
    "CR202": "applies a chat template",
    "CR401": "builds a quantization config",
}
# The callee tag of a finding that a loader module may make: a non-literal trust_remote_code there is
# the loader's own switch, recorded in its provenance.
_LOADER_DECIDES = "<loader-decides>"
# A free function of these names applies a chat template wherever it was defined.
_CHAT_FUNCTIONS = frozenset({"apply_chat_template", "maybe_apply_chat_template"})
# A receiver named like this holds settings: ``args.apply_chat_template`` is a flag, not the method.
_SETTINGS_NAME = re.compile(
    r"(?:^|_)(?:args|arguments|config|cfg|conf|opts?|options|hparams|params|settings|flags)$", re.I
)
_PIPELINES = frozenset({"transformers.pipeline", "transformers.pipelines.pipeline"})
_CHAT_ATTRS = frozenset({"chat_template", "default_chat_template"})
_SPECIAL_ATTRS = frozenset(
    {"bos_token", "eos_token", "pad_token", "bos_token_id", "eos_token_id", "pad_token_id"}
)
_TOKEN_KWARGS = frozenset({"bos_token", "eos_token", "pad_token"})  # SFTConfig(eos_token=...) and kin
_MUTATORS = frozenset({"update", "pop", "popitem", "clear", "setdefault", "__setitem__", "__delitem__"})
# Reflective attribute access: the builtins (by any name bound to them) and the dunder methods.
_REFLECT_BUILTINS = {"getattr": "get", "setattr": "set", "delattr": "del"}
_REFLECT_DUNDERS = {
    "__getattribute__": "get",
    "__getattr__": "get",
    "__setattr__": "set",
    "__delattr__": "del",
}
# transformers' quantization configs (``quantization_config=`` values): building one decides the
# weights' numerics outside the loader.
_QUANT_CONFIGS = frozenset(
    {"BitsAndBytesConfig", "GPTQConfig", "AwqConfig", "AqlmConfig", "QuantoConfig", "HqqConfig", "EetqConfig"}
    | {"TorchAoConfig", "Mxfp4Config", "FbgemmFp8Config", "FineGrainedFP8Config", "CompressedTensorsConfig"}
    | {"BitNetQuantConfig", "HiggsConfig", "VptqConfig", "SpQRConfig", "QuarkConfig", "AutoRoundConfig"}
)
_QUANT_KWARGS = frozenset({"load_in_4bit", "load_in_8bit", "quantization_config"})
_TORCH_LOAD = frozenset({"torch.load", "torch.serialization.load"})
_PICKLE_LOADS = frozenset(
    f"{mod}.{fn}"
    for mod in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
    for fn in ("load", "loads", "Unpickler")
) | {"joblib.load", "pandas.read_pickle", "torch.serialization.pickle.load"}
_NUMPY_LOAD = frozenset({"numpy.load"})


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
    callee: str = ""  # CR401 keywords: the qualified callee (a loader module's function is exempt)

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
    """The module's import table: local name (or dotted ``self.attr``) → qualified dotted name."""

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
            # A relative import keeps its dots (``.hf.AutoTokenizer``): never equal to a library's
            # qualified name, but a re-exported class keeps its class name.
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if alias.name == "*":
                    self.star = self.star or module
                else:
                    sep = "." if node.module else ""
                    self.table[alias.asname or alias.name] = f"{module}{sep}{alias.name}"
        self.bound = {
            n.name for t in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef) for n in nodes.get(t, ())
        }
        pairs = _bindings(nodes)
        self.dotted = False  # whether a dotted target (``self.cls = ...``) is bound: only then look one up
        # Rounds resolve chains such as ``tf = transformers; M = tf.AutoModel`` in any order.
        for _ in range(3):
            changed = False
            for key, value in pairs:
                qual = self.resolve(value)
                if qual is not None and self.table.get(key) != qual:
                    self.table[key] = qual
                    self.dotted = self.dotted or "." in key
                    changed = True
            if not changed:
                break

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted name *node* refers to, or None when it is not an imported name."""
        if isinstance(node, ast.Name):
            qual = self.table.get(node.id)
            if qual is None and self.star is not None and node.id not in self.bound:
                return f"{self.star}.{node.id}"
            return qual
        if isinstance(node, ast.Attribute):
            if self.dotted:
                key = _dotted(node)
                if key is not None and key in self.table:
                    return self.table[key]
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base is not None else None
        if isinstance(node, ast.IfExp):  # ``A if c else B``: either class may be the one loaded
            return self.resolve(node.body) or self.resolve(node.orelse)
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            access = _reflective(node, self)
            if access is None and len(node.args) >= 2 and _dynamic_getattr(node, self):
                base = self.resolve(node.args[0])  # ``getattr(transformers, name)``: some member
                return f"{base}.*" if base is not None else None
            if access is not None:
                base = self.resolve(node.args[0]) if access[0] == "get" and access[2] == 1 else None
                return f"{base}.{access[1]}" if base is not None else None
            if (isinstance(func, ast.Name) and func.id == "__import__") or self.resolve(
                func
            ) == "importlib.import_module":
                return _const_str(node.args[0])
        return None


def _dotted(node: ast.AST) -> str | None:
    """``"a.b.c"`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _bindings(nodes: dict[type, list]) -> list[tuple[str, ast.AST]]:
    """(target, value) for every binding that can alias an imported name.

    Plain, chained, annotated and walrus assignments; tuple targets are paired with a tuple value
    of the same length element by element; a target may be a name or a dotted ``self.attr``.
    Class-body assignments also bind ``self.NAME``, ``cls.NAME`` and ``Class.NAME``.
    """
    pairs: list[tuple[str, ast.AST]] = []
    for node in nodes.get(ast.Assign, ()):
        for target in node.targets:
            _pair(target, node.value, pairs)
    for node in (*nodes.get(ast.AnnAssign, ()), *nodes.get(ast.NamedExpr, ())):
        if node.value is not None:
            _pair(node.target, node.value, pairs)
    for cls in nodes.get(ast.ClassDef, ()):
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                targets, value = [stmt.target], stmt.value
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Name):
                    pairs.extend((f"{owner}.{target.id}", value) for owner in ("self", "cls", cls.name))
    return pairs


def _pair(target: ast.AST, value: ast.AST, pairs: list[tuple[str, ast.AST]]) -> None:
    """Append (dotted target, value) to *pairs*, element by element for equal-length tuples."""
    if isinstance(target, (ast.Tuple, ast.List)):
        if (
            isinstance(value, (ast.Tuple, ast.List))
            and len(value.elts) == len(target.elts)
            and not any(isinstance(e, ast.Starred) for e in (*target.elts, *value.elts))
        ):
            for t, v in zip(target.elts, value.elts, strict=True):
                _pair(t, v, pairs)
        return
    key = _dotted(target)
    if key is not None:
        pairs.append((key, value))


def _reflective(node: ast.AST, names: _Names) -> tuple[str, str, int] | None:
    """``(kind, attribute, index)`` for reflective attribute access with a literal attribute name.

    *kind* is ``"get"``, ``"set"`` or ``"del"``; *index* is where the name stands in the arguments
    (1 for ``setattr(obj, "x", v)`` and ``object.__setattr__(obj, "x", v)``, 0 for the bound
    ``obj.__setattr__("x", v)``). The builtins count by any name bound to them (``builtins.setattr``).
    """
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    kind: str | None = None
    index = 1
    if isinstance(func, ast.Name):
        kind = _REFLECT_BUILTINS.get(func.id) or _builtin_alias(names.resolve(func))
    elif isinstance(func, ast.Attribute):
        kind = _REFLECT_DUNDERS.get(func.attr)
        if kind is not None:
            index = 0 if _const_str(node.args[0]) is not None else 1
        elif func.attr in _REFLECT_BUILTINS:
            kind = _builtin_alias(names.resolve(func))
    if kind is None:
        return None
    if len(node.args) <= index:
        return None
    attr = _const_str(node.args[index])
    return (kind, attr, index) if attr is not None else None


def _dynamic_getattr(node: ast.Call, names: _Names) -> bool:
    """``getattr(obj, <not a literal>)`` by any name bound to the builtin."""
    func = node.func
    if isinstance(func, ast.Name) and func.id == "getattr":
        return True
    return _builtin_alias(names.resolve(func)) == "get"


def _builtin_alias(qual: str | None) -> str | None:
    """The reflective kind of ``builtins.setattr`` and friends reached by another name."""
    if qual is None or not qual.startswith("builtins."):
        return None
    return _REFLECT_BUILTINS.get(qual[len("builtins.") :])


def _attr_name(node: ast.AST, names: _Names) -> str | None:
    """The attribute *node* reads: ``obj.x`` and ``getattr(obj, "x")`` both give ``"x"``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    access = _reflective(node, names)
    return access[1] if access is not None and access[0] == "get" else None


def _is_loading_class(qual: str) -> bool:
    """True for a class whose ``from_pretrained`` loads a model or tokenizer, judged by its name.

    The name decides, not the library: ``from mylab.hf import AutoModelForCausalLM`` is the same
    class re-exported. ``Dataset``, ``PeftModel`` (adapters onto a loaded model) and the like pass.
    """
    parts = qual.split(".")
    if len(parts) < 2:
        return False  # a module, not a class imported from one
    last = parts[-1]
    if last.endswith(_CONFIG_SUFFIXES):
        return False  # reading a config loads no weights and no tokenizer (CR103)
    if last.startswith("PeftModel"):
        return (
            False  # ``PeftModel.from_pretrained(model, adapter)``: an adapter onto a model the loader loaded
        )
    return (
        parts[0] in _LOAD_LIBRARIES
        or _AUTO_CLASS.match(last) is not None
        or _FOR_SUFFIX.search(last) is not None
        or last.endswith(_LOAD_SUFFIXES)
        or "Tokenizer" in last
        or last in _LOAD_NAMES
    )


def _is_config_class(qual: str) -> bool:
    """``AutoConfig``, ``GenerationConfig``, ``transformers.LlamaConfig``: a config read (CR103)."""
    parts = qual.split(".")
    last = parts[-1]
    return (
        len(parts) >= 2
        and last.endswith(_CONFIG_SUFFIXES)
        and (parts[0] in _LOAD_LIBRARIES or _AUTO_CLASS.match(last) is not None or last == "GenerationConfig")
    )


def _helper_rule(qual: str | None, helpers: dict[str, str]) -> tuple[str, str] | None:
    """(rule, helper name) when *qual* is a listed helper (same package and same last part)."""
    if qual is None:
        return None
    root, _, rest = qual.partition(".")
    last = qual.rsplit(".", 1)[-1]
    for name, rule in helpers.items():
        h_root, _, h_rest = name.partition(".")
        if name == qual or (root == h_root and rest and h_rest and last == name.rsplit(".", 1)[-1]):
            return rule, name
    return None


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


def _flag_contexts(nodes: dict[type, list]) -> set[int]:
    """ids of expressions read as a truth value: ``if x``, ``assert x``, ``not x``, ``a and x``, ``x == y``."""
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
    return ids


def _settings_receiver(node: ast.AST) -> bool:
    """The attribute chain *node* has a link named like a settings object (``args.data``, ``cfg``)."""
    while isinstance(node, ast.Attribute):
        if _SETTINGS_NAME.search(node.attr):
            return True
        node = node.value
    return isinstance(node, ast.Name) and _SETTINGS_NAME.search(node.id) is not None


def _own_field(target: ast.Attribute) -> bool:
    """``self.x = ...`` / ``cls.x = ...``: the caller's own state, not a tokenizer's."""
    return isinstance(target.value, ast.Name) and target.value.id in ("self", "cls")


def _copied_into_config(target: ast.Attribute, value: ast.AST | None) -> bool:
    """``gen_config.eos_token_id = tokenizer.eos_token_id``: a read copied into a config object."""
    receiver = target.value
    name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
    return (
        name.lower().endswith("config") and isinstance(value, ast.Attribute) and value.attr in _SPECIAL_ATTRS
    )


def _check_dicts(nodes: dict[type, list], calls, add) -> None:  # type: ignore[no-untyped-def]
    """``trust_remote_code`` in a dict literal: ``True`` anywhere; a non-literal where the dict is passed
    on (an argument, or bound to a name that some call spreads or receives). A record of the setting
    (a provenance or logging dict) is not passed on."""
    spread = {id(kw.value) for call in calls for kw in call.keywords if kw.arg is None}
    args = [a for call in calls for a in (*call.args, *(kw.value for kw in call.keywords))]
    passed = {id(a) for a in args}
    passed_names = {a.id for a in args if isinstance(a, ast.Name)}
    bound: dict[int, str] = {}
    for assign in nodes.get(ast.Assign, ()):
        for target in assign.targets:
            if isinstance(target, ast.Name):
                bound[id(assign.value)] = target.id
    for node in nodes.get(ast.Dict, ()):
        if id(node) in spread:
            continue  # ``f(**{...})``: checked as the call's keywords
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None or _const_str(key) != "trust_remote_code" or _is_const(value, False, None):
                continue
            if _is_const(value, True):
                add(key, "CR501", "trust_remote_code: True in a dict")
            elif id(node) in passed or bound.get(id(node)) in passed_names:
                add(
                    key, "CR501", "trust_remote_code in a dict that is passed on may be True", _LOADER_DECIDES
                )


def check_tree(tree: ast.AST, path: str, helpers: dict[str, str] | None = None) -> list[Violation]:
    """Every violation in a parsed module (before waivers and loader exemptions).

    *helpers*: qualified helper name -> rule (default :data:`HELPERS`). One finding per rule and
    line: a statement that breaks a rule twice is one thing to fix.
    """
    nodes = _collect(tree)
    names = _Names(nodes)
    found: list[Violation] = []
    seen: set[tuple[str, int]] = set()
    table = HELPERS if helpers is None else helpers

    def add(node: ast.AST, rule: str, what: str, callee: str = "") -> None:
        fix = RULES_BY_ID[rule].fix
        line = getattr(node, "lineno", 1)
        if (rule, line) in seen:
            return
        seen.add((rule, line))
        col = getattr(node, "col_offset", 0) + 1
        end = getattr(node, "end_lineno", None) or line
        found.append(Violation(path, line, col, rule, f"{what}; {fix}", end, callee))

    calls = nodes.get(ast.Call, ())
    # A from_pretrained read that is called is reported at the call (its span covers the arguments,
    # where a waiver may stand); any other read is reported where it stands.
    callees = {id(call.func) for call in calls}
    flags = _flag_contexts(nodes)
    values: dict[int, ast.AST] = {}
    for assign in nodes.get(ast.Assign, ()):
        for target in assign.targets:
            values[id(target)] = assign.value
    for node in nodes.get(ast.Attribute, ()):
        if node.attr == "apply_chat_template":
            if type(node.ctx) is not ast.Load:
                continue  # ``args.apply_chat_template = True``: a setting written
            if id(node) not in callees and (id(node) in flags or _settings_receiver(node.value)):
                continue  # a boolean setting read, not the method
            add(node, "CR202", "apply_chat_template used outside the loader")
        elif node.attr == "from_pretrained" and id(node) not in callees:
            _check_from_pretrained_read(node, node.value, names, add)
        elif type(node.ctx) is not ast.Load:
            if node.attr in _CHAT_ATTRS:
                if _own_field(node):
                    continue
                verb = "assigned" if type(node.ctx) is ast.Store else "deleted"
                add(node, "CR201", f"{node.attr} {verb} outside the loader")
            elif node.attr in _SPECIAL_ATTRS:
                if _own_field(node) or _copied_into_config(node, values.get(id(node))):
                    continue
                add(node, "CR302", f"{node.attr} assigned outside the loader")
    for node in nodes.get(ast.Subscript, ()):
        if type(node.ctx) is ast.Load:
            continue
        key = _const_str(node.slice)
        held = _attr_name(node.value, names)
        if key in _CHAT_ATTRS or held in _CHAT_ATTRS:
            add(node, "CR201", f"{key or held} modified through a subscript outside the loader")
        elif key in _SPECIAL_ATTRS:
            add(node, "CR302", f"{key!r} written through a subscript outside the loader")
    _check_dicts(nodes, calls, add)
    for node in calls:
        _check_call(node, names, add, id(node) in callees, flags, table)
    return found


def _round_trip(node: ast.Call, qual: str, names: _Names) -> bool:
    """``pickle.loads(pickle.dumps(obj))``: the process's own object, nothing read from outside."""
    if not qual.endswith(".loads") or len(node.args) != 1 or not isinstance(node.args[0], ast.Call):
        return False
    inner = names.resolve(node.args[0].func)
    return inner == qual[: -len("loads")] + "dumps"


def _check_from_pretrained_read(node: ast.AST, receiver: ast.AST, names: _Names, add) -> None:  # type: ignore[no-untyped-def]
    """An uncalled ``X.from_pretrained`` on a loading class: an alias, a partial, a callback."""
    qual = names.resolve(receiver)
    if qual is not None and _is_loading_class(qual):
        add(
            node,
            "CR101",
            f"{qual}.from_pretrained referenced outside the loader (an alias loads all the same)",
        )


def _check_call(  # type: ignore[no-untyped-def]
    node: ast.Call, names: _Names, add, called: bool, flags: set[int], helpers: dict[str, str]
) -> None:
    """The call rules; *called*: *node* is itself the callee of another call (``getattr(...)(p)``)."""
    func = node.func
    func_attr = _attr_name(func, names)
    loads = False  # a from_pretrained()/pipeline() call: a non-literal trust_remote_code is suspect here
    access = _reflective(node, names)
    if access is not None:  # getattr/setattr/delattr in any spelling
        kind, attr, index = access
        shown = f"{ast.unparse(func)}({'..., ' * index}{attr!r})"
        if kind == "get" and attr == "apply_chat_template":
            default = node.args[index + 1] if len(node.args) > index + 1 else None
            if not called and (
                id(node) in flags or (default is not None and _is_const(default, True, False, None))
            ):
                return  # ``getattr(args, "apply_chat_template", False)``: a setting read
            add(node, "CR202", f"apply_chat_template fetched with {shown} outside the loader")
        elif kind == "get" and attr == "from_pretrained" and not called and index == 1:
            _check_from_pretrained_read(node, node.args[0], names, add)
        elif kind != "get" and attr in _CHAT_ATTRS:
            add(node, "CR201", f"{shown} outside the loader")
        elif kind != "get" and attr in _SPECIAL_ATTRS:
            add(node, "CR302", f"{shown} outside the loader")
        return
    if func_attr == "from_pretrained":
        receiver = func.value if isinstance(func, ast.Attribute) else func.args[0]  # type: ignore[attr-defined]
        qual = names.resolve(receiver)
        if qual is not None and _is_loading_class(qual):
            loads = True
            add(node, "CR101", f"{qual}.from_pretrained() outside the loader")
        elif qual is not None and _is_config_class(qual):
            loads = True  # a config class from the Hub runs its remote code: trust_remote_code matters
            add(node, "CR103", f"{qual}.from_pretrained() reads a config outside the loader")
    elif func_attr in _MUTATORS and isinstance(func, ast.Attribute):
        held = _attr_name(func.value, names)
        if held in _CHAT_ATTRS:
            add(node, "CR201", f"{held}.{func_attr}() outside the loader")
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
    last = func.id if isinstance(func, ast.Name) else func_attr
    if qual is not None:
        last = qual.rsplit(".", 1)[-1]
        if qual in _PIPELINES:
            loads = True
            add(node, "CR102", f"{qual}() outside the loader")
        elif last in _QUANT_CONFIGS:
            is_bnb = True
            add(node, "CR401", f"{qual}() built outside the loader")
        elif qual in _TORCH_LOAD:
            if not any(k == "weights_only" and _is_const(v, True) for k, v, _ in _keywords(node)):
                add(node, "CR502", f"{qual}() without weights_only=True")
        elif qual in _PICKLE_LOADS:
            if not _round_trip(node, qual, names):
                add(node, "CR503", f"{qual}() unpickles")
        elif qual in _NUMPY_LOAD:
            for k, v, where in _keywords(node):
                if k == "allow_pickle" and not _is_const(v, False, None):
                    add(where, "CR503", "numpy.load(allow_pickle=...) unpickles")
        elif last == "from_pretrained" and _is_loading_class(qual[: -len(".from_pretrained")]):
            loads = True  # an alias of X.from_pretrained, reported where it was read
        else:
            helper = _helper_rule(qual, helpers)
            if helper is not None:
                loads = loads or helper[0] == "CR101"
                add(
                    node,
                    helper[0],
                    f"{qual}() {_HELPER_WHY.get(helper[0], 'breaks ' + helper[0])} outside the loader",
                )
    elif isinstance(func, ast.Name) and func.id in _CHAT_FUNCTIONS:
        add(node, "CR202", f"{func.id}() applies a chat template outside the loader")
    for arg in (*node.args, *(kw.value for kw in node.keywords)):  # ``ds.map(maybe_apply_chat_template)``
        if isinstance(arg, (ast.Name, ast.Attribute)):
            helper = _helper_rule(names.resolve(arg), helpers)
            if helper is not None:
                add(
                    arg,
                    helper[0],
                    f"{ast.unparse(arg)} passed on: it {_HELPER_WHY.get(helper[0], 'breaks ' + helper[0])}",
                )
    # Token keywords rewrite the tokenizer where the callee builds one or configures training on it:
    # a loading class or its from_pretrained, TRL's SFTConfig/DPOConfig (``eos_token=``), any *Config.
    rewrites_tokens = loads or (
        last is not None and (last.endswith("Config") or (qual is not None and _is_loading_class(qual)))
    )
    if func_attr is not None and func_attr.startswith("assert_"):
        return  # ``mock.assert_called_once_with(p, trust_remote_code=True)`` compares; it passes nothing
    for key, value, where in _keywords(node):
        if key == "add_special_tokens":
            add(
                where,
                "CR301",
                "add_special_tokens= passed outside the loader (even =False to count tokens: the count "
                "then differs by the BOS/EOS from what training sees)",
            )
        elif key == "trust_remote_code" and _is_const(value, True):
            add(where, "CR501", "trust_remote_code=True")
        elif key == "trust_remote_code" and (loads or last == "dict") and not _is_const(value, False, None):
            add(
                where,
                "CR501",
                f"trust_remote_code passed a value that may be True to {last}()",
                _LOADER_DECIDES,
            )
        elif key in _CHAT_ATTRS:
            add(where, "CR201", f"{key}= passed outside the loader")
        elif key in _QUANT_KWARGS and not is_bnb and not _is_const(value, False, None):
            add(where, "CR401", f"{key}= passed outside the loader", qual or "")
        elif key in _TOKEN_KWARGS and rewrites_tokens:
            add(
                where,
                "CR302",
                f"{key}= passed to {last}() outside the loader (it rewrites the tokenizer's {key})",
            )

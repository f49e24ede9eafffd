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

from cleanroom.code_gates.calls import check_call, check_from_pretrained_read, check_from_pretrained_write
from cleanroom.code_gates.doubles import Doubles
from cleanroom.code_gates.forwarding import MethodForwarders, Reach
from cleanroom.code_gates.names import Names, attr_name, const_str
from cleanroom.code_gates.rules import RULES_BY_ID
from cleanroom.code_gates.scopes import Scopes
from cleanroom.code_gates.switches import check_dicts
from cleanroom.code_gates.violation import Report, Violation
from cleanroom.code_gates.vocabulary import CHAT_ATTRS, HELPERS, SETTINGS_NAME, SPECIAL_ATTRS
from cleanroom.code_gates.walk import collect, flag_contexts

__all__ = ["HELPERS", "Violation", "check_tree"]


def _settings_receiver(node: ast.AST) -> bool:
    """The attribute chain *node* has a link named like a settings object (``args.data``, ``cfg``)."""
    while isinstance(node, ast.Attribute):
        if SETTINGS_NAME.search(node.attr):
            return True
        node = node.value
    return isinstance(node, ast.Name) and SETTINGS_NAME.search(node.id) is not None


def _own_field(target: ast.Attribute) -> bool:
    """``self.x = ...`` / ``cls.x = ...``: the caller's own state, not a tokenizer's."""
    return isinstance(target.value, ast.Name) and target.value.id in ("self", "cls")


def _copied_into_config(target: ast.Attribute, value: ast.AST | None) -> bool:
    """``gen_config.eos_token_id = tokenizer.eos_token_id``: a read copied into a config object."""
    receiver = target.value
    name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
    return (
        name.lower().endswith("config") and isinstance(value, ast.Attribute) and value.attr in SPECIAL_ATTRS
    )


def check_tree(
    tree: ast.AST, path: str, helpers: dict[str, str] | None = None, reach: Reach | None = None
) -> list[Violation]:
    """Every violation in a parsed module (before waivers and loader exemptions).

    *helpers*: qualified helper name -> rule (default :data:`HELPERS`). *reach*: the repository's
    forwarding loaders this module can call (see :mod:`cleanroom.code_gates.forwarding`). One finding
    per rule and line: a statement that breaks a rule twice is one thing to fix.
    """
    nodes = collect(tree)
    names = Names(nodes)
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

    calls = nodes.get(ast.Call, [])
    # A from_pretrained read that is called is reported at the call (its span covers the arguments,
    # where a waiver may stand); any other read is reported where it stands.
    callees = {id(call.func) for call in calls}
    flags = flag_contexts(nodes)
    scopes = Scopes(nodes)
    doubles = Doubles(nodes, names, scopes)
    methods = MethodForwarders(path, names, scopes, table)
    _check_attributes(nodes, names, add, callees, flags, doubles)
    _check_subscripts(nodes, names, add)
    check_dicts(nodes, calls, add, scopes, names, table)
    for node in calls:
        if reach is not None:  # first: a wrapper's message names where the switch is forwarded
            reach.check(node, names, scopes, add)
        methods.check(node, add)
        check_call(node, names, add, id(node) in callees, flags, table, doubles, scopes)
    return found


def _check_attributes(
    nodes: dict[type, list], names: Names, add: Report, callees: set[int], flags: set[int], doubles: Doubles
) -> None:
    """Attribute reads and writes: ``.apply_chat_template``, an uncalled ``.from_pretrained``, a
    ``.from_pretrained`` replaced (a patch changes what loads; only putting the saved method back is
    silent), ``.chat_template = ...`` and ``.eos_token = ...`` on any object but the caller's own or a test double's."""
    values: dict[int, ast.AST] = {}
    assigns: dict[int, ast.Assign] = {}
    for assign in nodes.get(ast.Assign, ()):
        assigns[id(assign.value)] = assign
        for target in assign.targets:
            values[id(target)] = assign.value
    for node in nodes.get(ast.Attribute, ()):
        if node.attr == "from_pretrained" and type(node.ctx) is not ast.Load:
            if not doubles.puts_back(node, values.get(id(node))):
                check_from_pretrained_write(node, names, add)
            continue
        if node.attr in ("apply_chat_template", "from_pretrained") and (
            type(node.ctx) is not ast.Load or id(node) in doubles.inspected
        ):
            continue  # a setting written; a mock set up; a method inspected
        if node.attr == "apply_chat_template":
            if id(node) not in callees and (id(node) in flags or _settings_receiver(node.value)):
                continue  # a boolean setting read, not the method
            add(node, "CR202", "apply_chat_template used outside the loader")
        elif node.attr == "from_pretrained" and id(node) not in callees:
            if not doubles.restore_only(node, assigns):
                check_from_pretrained_read(node, node.value, names, add)
        elif (
            type(node.ctx) is not ast.Load
            and (node.attr in CHAT_ATTRS or node.attr in SPECIAL_ATTRS)
            and not doubles.holds_double(node)
        ):
            _check_attribute_write(node, values, add)


def _check_attribute_write(node: ast.Attribute, values: dict[int, ast.AST], add: Report) -> None:
    """``x.chat_template = t`` / ``del x.chat_template`` (CR201), ``x.eos_token = t`` (CR302)."""
    if node.attr in CHAT_ATTRS:
        if _own_field(node):
            return
        verb = "assigned" if type(node.ctx) is ast.Store else "deleted"
        add(node, "CR201", f"{node.attr} {verb} outside the loader")
    elif node.attr in SPECIAL_ATTRS:
        if _own_field(node) or _copied_into_config(node, values.get(id(node))):
            return
        add(node, "CR302", f"{node.attr} assigned outside the loader")


def _check_subscripts(nodes: dict[type, list], names: Names, add: Report) -> None:
    """``tok.__dict__["chat_template"] = t``, ``tok.chat_template[k] = v`` and kin."""
    for node in nodes.get(ast.Subscript, ()):
        if type(node.ctx) is ast.Load:
            continue
        key = const_str(node.slice)
        held = attr_name(node.value, names)
        if key in CHAT_ATTRS or held in CHAT_ATTRS:
            add(node, "CR201", f"{key or held} modified through a subscript outside the loader")
        elif key in SPECIAL_ATTRS:
            add(node, "CR302", f"{key!r} written through a subscript outside the loader")

"""``trust_remote_code`` kept in a dict that reaches a load (CR501): the dict rule.

A dict is how a switch travels to a load it is spread into (``kw = {"trust_remote_code": t};
AutoModel.from_pretrained(p, **kw)``, or a repository's own wrapper, ``load_model(p, **kw)``): the load
itself shows no keyword. The rule judges the dict where the key is written:

* a dict literal's ``"trust_remote_code": True``, anywhere; a non-literal value where the dict is passed on
  (an argument, or bound to a name, ``self.attr`` included, that some call spreads or receives);
* the same key written into a dict afterwards: ``kw["trust_remote_code"] = t``,
  ``kw.update(trust_remote_code=t)``, ``kw.setdefault("trust_remote_code", t)``: ``True`` anywhere, a
  non-literal where that name is passed on.

"Passed on" is by name across the module (flow-insensitive, like the import table): a dict built in one
function and returned, then spread in another under the same name, is passed on. A record of the setting (a
provenance or logging dict never handed to a call) is not. ``dict(trust_remote_code=t)`` is a call, judged
with the call rules; a key spread from a dict literal into a call is this rule's alone (never reported twice).
"""

from __future__ import annotations

import ast

from cleanroom.code_gates.names import const_str, dotted_name, is_const
from cleanroom.code_gates.violation import Report
from cleanroom.code_gates.vocabulary import LOADER_DECIDES

_KEY = "trust_remote_code"


def check_dicts(nodes: dict[type, list], calls: list[ast.Call], add: Report) -> None:
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
    args = [a for call in calls for a in (*call.args, *(kw.value for kw in call.keywords))]
    passed = {id(a) for a in args}
    passed_names = {key for a in args if (key := dotted_name(a)) is not None}
    bound: dict[int, str] = {}
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        for target in assign.targets if isinstance(assign, ast.Assign) else [assign.target]:
            name = dotted_name(target)
            if name is not None and assign.value is not None:
                bound[id(assign.value)] = name
    for node, key, value in keys:
        if is_const(value, True):
            add(key, "CR501", "trust_remote_code: True in a dict")
        elif id(node) in passed or bound.get(id(node)) in passed_names:
            add(key, "CR501", "trust_remote_code in a dict that is passed on may be True", LOADER_DECIDES)
    for where, owner, value in written:
        if is_const(value, True):
            add(where, "CR501", f"trust_remote_code: True written into {owner}")
        elif owner in passed_names:
            add(where, "CR501", f"trust_remote_code written into {owner}, which is passed on, may be True", LOADER_DECIDES)


def _written(nodes: dict[type, list], calls: list[ast.Call]) -> list[tuple[ast.AST, str, ast.AST]]:
    """(position, dict's name, value) for each ``trust_remote_code`` written into a named dict after it was built,
    by a subscript, ``update(trust_remote_code=...)`` or ``setdefault("trust_remote_code", ...)``; a literal
    ``False``/``None`` writes nothing that matters."""
    found: list[tuple[ast.AST, str, ast.AST]] = []
    for assign in (*nodes.get(ast.Assign, ()), *nodes.get(ast.AnnAssign, ())):
        targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and const_str(target.slice) == _KEY and assign.value is not None:
                owner = dotted_name(target.value)
                if owner is not None:
                    found.append((target, owner, assign.value))
    for call in calls:
        func = call.func
        if not isinstance(func, ast.Attribute) or func.attr not in ("update", "setdefault"):
            continue
        owner = dotted_name(func.value)
        if owner is None:
            continue
        if func.attr == "update":  # a literal True there is the call rules' ``trust_remote_code=True``
            found.extend((kw, owner, kw.value) for kw in call.keywords if kw.arg == _KEY and not is_const(kw.value, True))
        elif len(call.args) == 2 and const_str(call.args[0]) == _KEY:
            found.append((call, owner, call.args[1]))
    return [(where, owner, value) for where, owner, value in found if not is_const(value, False, None)]


__all__ = ["check_dicts"]

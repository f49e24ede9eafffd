"""A chat template applied without ``apply_chat_template`` (CR202): vLLM's ``LLM.chat`` and a template
compiled by hand.

* ``LLM(model=p).chat(messages)`` renders the messages with the model's chat template. A receiver's
  type is unknown statically, so ``.chat(`` counts only on a call of vLLM's ``LLM`` class or on a name
  (or ``self.attr``) bound to one in the scope where it is used (:class:`~cleanroom.code_gates.scopes.Scopes`);
  the class is resolved through the module's imports (``from vllm import LLM as E``, ``vllm.LLM``).
* ``jinja2.Template(tok.chat_template)``, ``env.from_string(tok.chat_template).render(...)`` (any
  environment, sandboxed or not) and transformers' ``_compile_jinja_template``: reading
  ``chat_template`` (or ``default_chat_template``) as a template's source is applying it by hand.
  An argument counts when it reads the attribute, or is a name bound to such a read in its scope
  (one hop: ``source = tok.chat_template; env.from_string(source)``).
"""

from __future__ import annotations

import ast

from cleanroom.code_gates.names import Names, attr_name, dotted_name
from cleanroom.code_gates.scopes import Scopes
from cleanroom.code_gates.violation import Report
from cleanroom.code_gates.vocabulary import CHAT_ATTRS, CHAT_ENGINES, helper_rule


def check_engine_chat(node: ast.Call, receiver: ast.AST, names: Names, scopes: Scopes, add: Report) -> None:
    """``receiver.chat(...)`` where the receiver is, or is bound to, a call of vLLM's ``LLM``."""
    held: list[ast.AST | None] = [receiver]
    key = dotted_name(receiver)
    if key is not None:
        held = list(scopes.values(key, node.lineno))
    for value in held:
        made = _engine_call(value, names)
        if made is not None:
            where = (
                "" if made is receiver else f" (bound to {ast.unparse(made.func)}(...) at line {made.lineno})"
            )
            add(
                node,
                "CR202",
                f"{ast.unparse(node.func)}(){where} applies the model's chat template outside the loader",
            )
            return


def _engine_call(value: ast.AST | None, names: Names) -> ast.Call | None:
    """*value* (or a branch of ``A if c else B``) as a call of a chat engine class, else None."""
    if isinstance(value, ast.IfExp):
        return _engine_call(value.body, names) or _engine_call(value.orelse, names)
    if isinstance(value, ast.Call) and helper_rule(names.resolve(value.func), CHAT_ENGINES) is not None:
        return value
    return None


def check_template_source(node: ast.Call, names: Names, scopes: Scopes, add: Report) -> None:
    """A jinja compile whose source reads ``chat_template``, directly or through a name bound to the read."""
    for arg in (*node.args, *(kw.value for kw in node.keywords)):
        read = _chat_template_read(arg, names)
        key = dotted_name(arg)
        for value in scopes.values(key, arg.lineno) if read is None and key is not None else ():
            read = _chat_template_read(value, names) if value is not None else None
            if read is not None:
                break
        if read is not None:
            shown = f"{ast.unparse(node.func)}() compiles {ast.unparse(read)}"
            add(node, "CR202", f"{shown} outside the loader (a chat template applied by hand)")
            return


def _chat_template_read(value: ast.AST, names: Names) -> ast.AST | None:
    """The first read of ``x.chat_template`` (or ``getattr(x, "chat_template")``) inside *value*."""
    for sub in ast.walk(value):
        if isinstance(sub, ast.Attribute | ast.Call) and attr_name(sub, names) in CHAT_ATTRS:
            if not isinstance(sub, ast.Attribute) or type(sub.ctx) is ast.Load:
                return sub
    return None

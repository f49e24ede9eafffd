"""A chat template applied without ``apply_chat_template`` (CR202): vLLM's ``LLM.chat`` and a template
compiled by hand.

* ``LLM(model=p).chat(messages)`` renders the messages with the model's chat template. A receiver's
  type is unknown statically, so ``.chat(`` counts only on a call of vLLM's ``LLM`` class or on a name
  (or ``self.attr``) bound to one in the scope where it is used (:class:`~cleanroom.code_gates.scopes.Scopes`);
  the class is resolved through the module's imports (``from vllm import LLM as E``, ``vllm.LLM``).
* ``jinja2.Template(tok.chat_template)``, ``env.from_string(tok.chat_template).render(...)`` (any
  environment, sandboxed or not) and transformers' ``_compile_jinja_template``: reading
  ``chat_template`` (or ``default_chat_template``) as a template's source is applying it by hand.
  The source counts (first argument or ``source=``) when it reads the attribute, or is a name bound to
  such a read in its scope (one hop: ``source = tok.chat_template; env.from_string(source)``).
"""

from __future__ import annotations

import ast

from cleanroom.code_gates.names import Names, attr_name, dotted_name, shown
from cleanroom.code_gates.scopes import Scopes
from cleanroom.code_gates.violation import Report
from cleanroom.code_gates.vocabulary import CHAT_ATTRS, CHAT_ENGINES, helper_rule


def check_engine_chat(node: ast.Call, receiver: ast.AST, names: Names, scopes: Scopes, add: Report) -> None:
    """``receiver.chat(...)`` where the receiver is, or is bound to, a call of vLLM's ``LLM``."""
    held: list[ast.AST | None] = [receiver]
    key = dotted_name(receiver)
    if key is not None:
        held = list(scopes.values(key, receiver))
    for value in held:
        made = _engine_call(value, names)
        if made is not None:
            where = (
                "" if made is receiver else f" (bound to {shown(made.func)}(...) at line {made.lineno})"
            )
            add(
                node,
                "CR202",
                f"{shown(node.func)}(){where} applies the model's chat template outside the loader",
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
    """A jinja compile whose source reads ``chat_template``, directly or through a name bound to the read.

    Only the source counts (the first positional argument, or ``source=``), and only as the read itself or a
    branch of ``a or b`` / ``a if c else b``: ``Template(HEADER, comment=tok.chat_template)`` compiles HEADER.
    ``.from_string`` counts on an environment: a call of a jinja2 class, a name bound to one, or a receiver
    whose type is unknown and named like a value (``env``, ``self._jinja``); ``Version.from_string(...)`` or
    any other class's parser is not a template compile."""
    if isinstance(node.func, ast.Attribute) and node.func.attr == "from_string" and not _environment(
        node.func.value, names, scopes
    ):
        return
    source = node.args[0] if node.args else next((kw.value for kw in node.keywords if kw.arg == "source"), None)
    if source is None or isinstance(source, ast.Starred):
        return
    read = _chat_template_read(source, names)
    key = dotted_name(source)
    for value in scopes.values(key, source) if read is None and key is not None else ():
        read = _chat_template_read(value, names) if value is not None else None
        if read is not None:
            break
    if read is not None:
        add(node, "CR202", f"{shown(node.func)}() compiles {shown(read)} outside the loader (a chat template "
                           "applied by hand)")


def _environment(receiver: ast.expr, names: Names, scopes: Scopes) -> bool:
    """Whether *receiver* of ``.from_string`` may be a jinja environment (see :func:`check_template_source`)."""
    key = dotted_name(receiver)
    held = [receiver] if key is None else [receiver, *scopes.values(key, receiver)]
    for value in held:
        if isinstance(value, ast.Call):
            qual = names.resolve(value.func)
            if qual is not None and qual.split(".", 1)[0] == "jinja2":
                return True
    if key is None:
        return False
    qual = names.resolve(receiver)
    if qual is not None:  # an imported name: jinja2's own, or another library's class or module
        return qual.split(".", 1)[0] == "jinja2"
    return key.rsplit(".", 1)[-1].lstrip("_")[:1].islower()  # ``env``, ``self._env``; not ``ChatTemplate``


def _chat_template_read(value: ast.AST, names: Names) -> ast.AST | None:
    """*value* as a read of ``x.chat_template`` (or ``getattr(x, "chat_template")``), or a branch of ``or`` /
    ``if ... else`` that is one; None for anything else."""
    if isinstance(value, ast.BoolOp) and isinstance(value.op, ast.Or):
        return next((r for v in value.values if (r := _chat_template_read(v, names)) is not None), None)
    if isinstance(value, ast.IfExp):
        return _chat_template_read(value.body, names) or _chat_template_read(value.orelse, names)
    if isinstance(value, ast.Attribute | ast.Call) and attr_name(value, names) in CHAT_ATTRS:
        if not isinstance(value, ast.Attribute) or type(value.ctx) is ast.Load:
            return value
    return None

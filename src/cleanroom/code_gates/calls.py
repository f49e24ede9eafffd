"""The call rules: what one ``ast.Call`` breaks, judged by its callee, its arguments and its keywords.

:func:`check_call` reads top to bottom: reflective access first (``getattr(tok, "chat_template")``
is judged by the attribute it names), then the method called (``from_pretrained``, a mutator on a
chat template, ``add_special_tokens``), then the qualified callee (``transformers.pipeline``,
``torch.load``, a listed helper), then helpers passed on as arguments, then the keywords.
Findings are reported in that order; :func:`~cleanroom.code_gates.checker.check_tree` keeps the first
per rule and line.
"""

from __future__ import annotations

import ast

from cleanroom.code_gates.doubles import Doubles
from cleanroom.code_gates.names import (
    Names,
    attr_name,
    const_str,
    dict_items,
    dotted_name,
    is_const,
    keywords,
    reflective,
    shown,
)
from cleanroom.code_gates.rendering import check_engine_chat, check_template_source
from cleanroom.code_gates.scopes import Scopes
from cleanroom.code_gates.violation import Report
from cleanroom.code_gates.vocabulary import (
    CHAT_ATTRS,
    CHAT_FUNCTIONS,
    HELPER_WHY,
    LOADER_DECIDES,
    MUTATORS,
    NUMPY_LOAD,
    PIPELINES,
    QUANT_CONFIGS,
    QUANT_KWARGS,
    RUNTIME_CLASS,
    SPECIAL_ATTRS,
    TEMPLATE_COMPILERS,
    TEMPLATE_METHODS,
    TOKEN_KWARGS,
    TORCH_LOAD,
    helper_rule,
    is_config_class,
    is_loading_class,
    is_pickle_load,
)


def check_call(
    node: ast.Call,
    names: Names,
    add: Report,
    called: bool,
    flags: set[int],
    helpers: dict[str, str],
    doubles: Doubles,
    scopes: Scopes,
) -> None:
    """The call rules; *called*: *node* is itself the callee of another call (``getattr(...)(p)``).

    *flags*: ids of expressions read as a truth value; *helpers*: qualified helper name -> rule;
    *doubles*: where the module's keywords only describe (a test double's constructor, a predicate);
    *scopes*: what a local name was bound to (``llm = LLM(...)``, ``kw = {...}``).
    """
    access = reflective(node, names)
    if access is not None:  # getattr/setattr/delattr in any spelling
        _check_reflective(node, access, names, add, called, flags)
        return
    func = node.func
    func_attr = attr_name(func, names)
    # loads: a from_pretrained()/pipeline() call, where a non-literal trust_remote_code is suspect
    loads = _check_method(node, func_attr, names, add)
    qual = names.resolve(func)
    last = func.id if isinstance(func, ast.Name) else func_attr
    is_bnb = False
    if qual is not None:
        last = qual.rsplit(".", 1)[-1]
        qual_loads, is_bnb = _check_qualified(node, qual, last, names, add, helpers, scopes)
        loads = loads or qual_loads
    elif isinstance(func, ast.Name) and func.id in CHAT_FUNCTIONS:
        add(node, "CR202", f"{func.id}() applies a chat template outside the loader")
    if func_attr == "chat" and isinstance(func, ast.Attribute):
        check_engine_chat(node, func.value, names, scopes, add)
    elif func_attr in TEMPLATE_METHODS or helper_rule(qual, TEMPLATE_COMPILERS) is not None:
        check_template_source(node, names, scopes, add)
    _check_passed_helpers(node, names, add, helpers)
    if func_attr is not None and func_attr.startswith("assert_"):
        return  # ``mock.assert_called_once_with(p, trust_remote_code=True)`` compares; it passes nothing
    _check_keywords(node, add, qual, last, loads, is_bnb, doubles, scopes)


def check_from_pretrained_read(node: ast.AST, receiver: ast.AST, names: Names, add: Report) -> None:
    """An uncalled ``X.from_pretrained`` on a loading class: an alias, a partial, a callback."""
    qual = names.resolve(receiver)
    if qual is not None and is_loading_class(qual):
        add(
            node,
            "CR101",
            f"{qual}.from_pretrained referenced outside the loader (an alias loads all the same)",
        )


def check_from_pretrained_write(node: ast.Attribute, names: Names, add: Report) -> None:
    """``X.from_pretrained = f`` / ``del X.from_pretrained`` on a loading class: a patch that changes
    what every later load in the process returns."""
    qual = names.resolve(node.value)
    if qual is not None and is_loading_class(qual):
        verb = "replaced" if type(node.ctx) is ast.Store else "deleted"
        add(node, "CR101", f"{qual}.from_pretrained {verb} outside the loader (the patch changes what loads)")


def _why(rule: str) -> str:
    """What a listed helper of *rule* does, for the message."""
    return HELPER_WHY.get(rule, "breaks " + rule)


def _check_reflective(
    node: ast.Call, access: tuple[str, str, int], names: Names, add: Report, called: bool, flags: set[int]
) -> None:
    """``getattr``/``setattr``/``delattr`` (any spelling) with a literal attribute name."""
    kind, attr, index = access
    access_text = f"{shown(node.func)}({'..., ' * index}{attr!r})"
    if kind == "get" and attr == "apply_chat_template":
        default = node.args[index + 1] if len(node.args) > index + 1 else None
        setting = id(node) in flags or (default is not None and is_const(default, True, False, None))
        if called or not setting:  # else ``getattr(args, "apply_chat_template", False)``: a setting read
            add(node, "CR202", f"apply_chat_template fetched with {access_text} outside the loader")
        return
    if kind == "get" and attr == "from_pretrained" and not called and index == 1:
        check_from_pretrained_read(node, node.args[0], names, add)
        return
    if kind != "get" and attr in CHAT_ATTRS:
        add(node, "CR201", f"{access_text} outside the loader")
        return
    if kind != "get" and attr in SPECIAL_ATTRS:
        add(node, "CR302", f"{access_text} outside the loader")


def _check_method(node: ast.Call, func_attr: str | None, names: Names, add: Report) -> bool:
    """The rules on the method name (whatever the receiver); True when the call loads something."""
    func = node.func
    if func_attr == "from_pretrained":
        return _check_from_pretrained_call(node, names, add)
    if func_attr in MUTATORS and isinstance(func, ast.Attribute):
        _check_mutator(node, func, names, add)
        return False
    if func_attr == "add_special_tokens" and isinstance(func, ast.Attribute):
        add(node, "CR302", "add_special_tokens() called outside the loader")
    return False


def _check_from_pretrained_call(node: ast.Call, names: Names, add: Report) -> bool:
    """``X.from_pretrained(...)`` or ``getattr(X, "from_pretrained")(...)``; True when X loads.

    An X the import table cannot name (a local variable, ``super()``, a subscript) may load: its
    keywords are judged as a load's (a non-literal ``trust_remote_code`` is CR501), and a variable
    named as a class held at run time (``auto_class``, ``model_cls``) is a load (CR101)."""
    func = node.func
    receiver = func.value if isinstance(func, ast.Attribute) else func.args[0]  # type: ignore[attr-defined]
    qual = names.resolve(receiver)
    if qual is None:
        held = dotted_name(receiver)
        if held is not None and RUNTIME_CLASS.search(held.rsplit(".", 1)[-1]):
            add(node, "CR101", f"{held}.from_pretrained() outside the loader (a class chosen at run time)")
        return True
    if is_loading_class(qual):
        add(node, "CR101", f"{qual}.from_pretrained() outside the loader")
        return True
    if is_config_class(qual):
        # a config class from the Hub runs its remote code: trust_remote_code matters
        add(node, "CR103", f"{qual}.from_pretrained() reads a config outside the loader")
        return True
    return False


def _check_mutator(node: ast.Call, func: ast.Attribute, names: Names, add: Report) -> None:
    """``tok.chat_template.update(...)``, ``d.pop("chat_template")``, ``d.update({"chat_template": t})``."""
    held = attr_name(func.value, names)
    if held in CHAT_ATTRS:
        add(node, "CR201", f"{held}.{func.attr}() outside the loader")
        return
    if func.attr == "pop" and node.args and const_str(node.args[0]) in CHAT_ATTRS:
        add(node, "CR201", f"pop({const_str(node.args[0])!r}) outside the loader")
        return
    if func.attr == "update" and node.args and isinstance(node.args[0], ast.Dict):
        keys = {const_str(k) for k in node.args[0].keys if k is not None}
        if keys & CHAT_ATTRS:
            add(node, "CR201", "update() of a chat_template key outside the loader")


def _check_qualified(
    node: ast.Call, qual: str, last: str, names: Names, add: Report, helpers: dict[str, str], scopes: Scopes
) -> tuple[bool, bool]:
    """The rules on a callee with a qualified name: (loads something, builds a quantization config)."""
    if qual in PIPELINES:
        add(node, "CR102", f"{qual}() outside the loader")
        return True, False
    if last in QUANT_CONFIGS:
        add(node, "CR401", f"{qual}() built outside the loader")
        return False, True
    if qual in TORCH_LOAD:
        if not any(k == "weights_only" and is_const(v, True) for k, v, _ in keywords(node)):
            add(node, "CR502", f"{qual}() without weights_only=True")
        return False, False
    if is_pickle_load(qual):
        if not _round_trip(node, qual, names, scopes):
            add(node, "CR503", f"{qual}() unpickles")
        return False, False
    if qual in NUMPY_LOAD:
        for k, v, where in keywords(node):
            if k == "allow_pickle" and not is_const(v, False, None):
                add(where, "CR503", "numpy.load(allow_pickle=...) unpickles")
        return False, False
    if last == "from_pretrained" and is_loading_class(qual[: -len(".from_pretrained")]):
        return True, False  # an alias of X.from_pretrained, reported where it was read
    helper = helper_rule(qual, helpers)
    if helper is None:
        return False, False
    add(node, helper[0], f"{qual}() {_why(helper[0])} outside the loader")
    return helper[0] == "CR101", False


def _round_trip(node: ast.Call, qual: str, names: Names, scopes: Scopes) -> bool:
    """``pickle.loads(pickle.dumps(obj))``, or ``s = pickle.dumps(obj); pickle.loads(s)`` where every
    binding of ``s`` in its scope is that dumps: the process's own object, nothing read from outside."""
    if not qual.endswith(".loads") or len(node.args) != 1:
        return False
    arg = node.args[0]
    held = scopes.values(arg.id, arg) if isinstance(arg, ast.Name) else [arg]
    dumps = qual[: -len("loads")] + "dumps"
    return bool(held) and all(isinstance(v, ast.Call) and names.resolve(v.func) == dumps for v in held)


def _check_passed_helpers(node: ast.Call, names: Names, add: Report, helpers: dict[str, str]) -> None:
    """A listed helper passed on uncalled: ``ds.map(maybe_apply_chat_template)``."""
    for arg in (*node.args, *(kw.value for kw in node.keywords)):
        if not isinstance(arg, (ast.Name, ast.Attribute)):
            continue
        helper = helper_rule(names.resolve(arg), helpers)
        if helper is not None:
            add(arg, helper[0], f"{shown(arg)} passed on: it {_why(helper[0])}")


def _check_keywords(
    node: ast.Call,
    add: Report,
    qual: str | None,
    last: str | None,
    loads: bool,
    is_bnb: bool,
    doubles: Doubles,
    scopes: Scopes,
) -> None:
    """The keyword rules; *qual*/*last*: the callee's qualified name and its last part.

    Token keywords rewrite the tokenizer where the callee builds one or configures training on it:
    a loading class or its from_pretrained, TRL's SFTConfig/DPOConfig (``eos_token=``), any *Config.
    Such a callee also reads the keys of a dict spread into it (``**kw`` bound in the scope to a dict
    literal or ``dict(...)``, or ``**dict(...)``) as its keywords, reported at the key.
    A test double's constructor or a predicate (``doubles.describes_only``, asked only once a migration
    keyword is found: most calls have none) answers to the safety rules (5xx) alone.
    """
    rewrites_tokens = loads or (
        last is not None and (last.endswith("Config") or (qual is not None and is_loading_class(qual)))
    )
    passed = [(key, value, where, "") for key, value, where in keywords(node)]
    if rewrites_tokens:
        passed.extend(_spread_keywords(node, scopes))
    for key, value, where, through in passed:
        if key == "add_special_tokens" and _names_tokens(value, scopes):
            finding: tuple[str, str, str] | None = (
                "CR302",
                f"add_special_tokens={shown(value)} adds tokens to the vocabulary outside the loader",
                "",
            )
        else:
            finding = _keyword_finding(key, value, qual, last, loads, is_bnb, rewrites_tokens)
        if finding is not None and not (finding[0] < "CR5" and doubles.describes_only(node, value)):
            add(where, finding[0], finding[1] + through, finding[2])


def _spread_keywords(node: ast.Call, scopes: Scopes) -> list[tuple[str, ast.AST, ast.AST, str]]:
    """(key, value, position, note) for the keys of a dict spread into *node* by name or as ``dict(...)``.

    ``**{...}`` literals are :func:`~cleanroom.code_gates.names.keywords`' own. A ``dict(k=v)`` call is
    checked as a call where it stands, so only its token keys (whose rule depends on the callee) are
    read again here; a dict literal's keys are read here only (its ``trust_remote_code`` is the dict
    rule's, reported first)."""
    found: list[tuple[str, ast.AST, ast.AST, str]] = []
    for kw in node.keywords:
        if kw.arg is not None or isinstance(kw.value, ast.Dict):
            continue
        key = dotted_name(kw.value)
        held = [kw.value] if key is None else scopes.values(key, kw.value)
        for value in held:
            for k, v, where in dict_items(value) if value is not None else ():
                # a dict literal's trust_remote_code is the dict rule's, reported at the key wherever the dict stands
                if (isinstance(value, ast.Dict) and k != "trust_remote_code") or k in TOKEN_KWARGS:
                    # reported at the ``**kw`` (where a waiver on the call's line covers it), naming the key's line
                    note = f" (key {k!r} at line {getattr(where, 'lineno', '?')}, passed through **{shown(kw.value)})"
                    found.append((k, v, kw.value, note))
    return found


_TOKEN_DISPLAYS = (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp, ast.JoinedStr)


def _names_tokens(value: ast.AST, scopes: Scopes) -> bool:
    """``add_special_tokens="<|x|>"`` or a list, tuple, set or dict of tokens (a display or a comprehension),
    directly or through a name bound to one in its scope: tokens added to the vocabulary, not the BOS/EOS
    switch (a bool or an unknown value)."""
    key = dotted_name(value)
    held = [value] if key is None else scopes.values(key, value)
    return any(isinstance(v, _TOKEN_DISPLAYS) or const_str(v) is not None for v in held if v is not None)


def _keyword_finding(
    key: str,
    value: ast.AST,
    qual: str | None,
    last: str | None,
    loads: bool,
    is_bnb: bool,
    rewrites_tokens: bool,
) -> tuple[str, str, str] | None:
    """(rule, what, callee tag) for one ``key=value`` passed to the call, or None when it breaks nothing."""
    if key == "add_special_tokens":
        return (
            "CR301",
            "add_special_tokens= passed outside the loader (even =False to count tokens: the count "
            "then differs by the BOS/EOS from what training sees)",
            "",
        )
    if key == "trust_remote_code":
        if is_const(value, True):
            return "CR501", "trust_remote_code=True", ""
        if (loads or last == "dict") and not is_const(value, False, None):
            return "CR501", f"trust_remote_code passed a value that may be True to {last}()", LOADER_DECIDES
        return None
    if key in CHAT_ATTRS:
        return "CR201", f"{key}= passed outside the loader", ""
    if key in QUANT_KWARGS:
        return (
            None
            if is_bnb or is_const(value, False, None)
            else ("CR401", f"{key}= passed outside the loader", qual or "")
        )
    if key in TOKEN_KWARGS and rewrites_tokens:
        return (
            "CR302",
            f"{key}= passed to {last}() outside the loader (it rewrites the tokenizer's {key})",
            "",
        )
    return None

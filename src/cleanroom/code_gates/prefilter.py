"""The prefilter: which modules need a Python AST at all.

Building and walking the AST is half the cold cost per file, and most files of a research
repository mention no trigger name. :func:`needs_ast` decides from the compiled code objects (and,
for the weak words ``load``/``loads``, from the source text) that a module cannot break a code rule.
Tests run both paths over the rule corpus and thousands of random adversarial modules.
"""

from __future__ import annotations

import keyword
import re
from types import CodeType

from cleanroom.code_gates.vocabulary import (
    CHAT_ATTRS,
    CHAT_FUNCTIONS,
    HELPERS,
    PICKLE_LOADS,
    QUANT_CONFIGS,
    QUANT_KWARGS,
    SPECIAL_ATTRS,
    TORCH_LOAD,
)

# Every rule needs one of these identifiers in the compiled code: as an attribute or global name
# (``co_names``), a keyword-argument name or a string constant (``co_consts``). Comments never reach
# a code object and docstrings are never *equal* to an identifier, so a module whose code objects
# mention none of them cannot violate a code rule and needs no Python AST: building it is most of
# the cost per file. (CPython keeps the names of unreachable code in ``co_names`` too; a test pins it.)
TRIGGER_NAMES = frozenset(
    {"from_pretrained", "pipeline", "apply_chat_template", "add_special_tokens"}
    | QUANT_CONFIGS
    | {name.rsplit(".", 1)[-1] for name in HELPERS}
    | CHAT_FUNCTIONS
    | CHAT_ATTRS
    | SPECIAL_ATTRS
    | QUANT_KWARGS
    | {"trust_remote_code", "load", "loads", "Unpickler", "read_pickle", "allow_pickle"}
)
# ``load``/``loads``/``Unpickler`` are everywhere (``json.load``, ``obj.load()``) and only matter as
# members of these modules (CR502/CR503), so they trigger the AST only in a module whose code names
# one of them: an ``import`` puts the module's dotted name in ``co_names``, ``import_module("torch")``
# and ``__import__`` put it in ``co_consts``, and no alias can reach a module without one of those.
_WEAK_TRIGGERS = frozenset({"load", "loads", "Unpickler"})
_WEAK_MODULES = frozenset(
    qual.split(".", 1)[0] for qual in TORCH_LOAD | PICKLE_LOADS if qual.rsplit(".", 1)[-1] in _WEAK_TRIGGERS
)
_STRONG_TRIGGERS = TRIGGER_NAMES - _WEAK_TRIGGERS
# Research scripts import torch *and* read JSON: ``json.load`` beside ``import torch`` is the common
# case, and so is ``CleanModelLoader(path).load()``. Where the source text proves that every weak word
# is either ``R.load`` on one of these plain data readers (each such ``R`` shown only as ``import R``
# or ``R.attr``, so nothing rebinds it) or ``.load`` on the result of a call ``name(...)`` written on
# one line (the checker resolves a call only through ``import_module``/``__import__``/``getattr``;
# these and every other way to reach a module by reflection must then be absent from the code), the
# module needs no AST either. Anything else in the text (an alias, a parameter, a keyword, a string
# "load", a parenthesised module, a star import, a non-ASCII identifier that NFKC folds to "load")
# keeps the AST. Tests run both paths over the rule corpus and 3,000 random adversarial modules.
_PLAIN_READERS = frozenset({b"json", b"yaml", b"tomllib", b"toml", b"orjson", b"ujson", b"simplejson"})
_WEAK_WORD = re.compile(rb"\b(?:load|loads|Unpickler)\b")
# Names through which a call can return a module; compared with the code objects' names, which hold
# every global, attribute and imported name the code uses (and never a comment or docstring word).
_REFLECTION_NAMES = frozenset(
    {"getattr", "__getattribute__", "__import__", "import_module", "reload", "attrgetter", "methodcaller"}
    | {"eval", "exec", "vars", "globals", "locals", "modules", "__dict__", "builtins", "__builtins__"}
)
_STAR_IMPORT = re.compile(rb"import\s*\*")
_CALLEE = re.compile(rb"[A-Za-z_][\w.]*$")
_TRIPLE_QUOTES = (b"'''", b'"""')


# Per plain reader: a mention that is neither ``R.attr`` nor ``obj.R`` (only ``import R`` may remain).
_READER_BINDINGS = {name: re.compile(rb"(?<![\w.])%s\b(?!\.[A-Za-z_])" % name) for name in _PLAIN_READERS}
_IMPORT_LINE = re.compile(rb"[ \t]*import[ \t]+([A-Za-z_]\w*)[ \t]*(?:#[^\n]*)?\r?")  # CRLF files too


def _plain_reader_receiver(source: bytes, name: bytes) -> bool:
    """``name`` is a plain data reader that the text shows only imported and used by attribute."""
    pattern = _READER_BINDINGS.get(name)
    if pattern is None:
        return False
    for mention in pattern.finditer(source):
        start = source.rfind(b"\n", 0, mention.start()) + 1
        end = source.find(b"\n", mention.end())
        line = _IMPORT_LINE.fullmatch(source, start, len(source) if end < 0 else end)
        if line is None or line.group(1) != name:
            return False
    return True


def _call_result_receiver(source: bytes, close: int) -> bool:
    """``source[close]`` is the ``)`` of a one-line call ``name(...)`` in code, name not a weak module."""
    line = source[source.rfind(b"\n", 0, close) + 1 : close]
    if any(q in line for q in _TRIPLE_QUOTES):
        return False
    stack: list[int] = []
    quote = 0
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == 0x5C:  # backslash: skip the escaped byte
                i += 1
            elif c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x23:  # '#': the ``)`` is in a comment
            return False
        elif c == 0x28:
            stack.append(i)
        elif c == 0x29:
            if not stack:
                return False
            stack.pop()
        i += 1
    if quote or not stack:
        return False
    callee = _CALLEE.search(line, 0, stack[-1])
    if callee is None:
        return False
    head = callee.group().split(b".", 1)[0].decode()
    # ``return(torch).load(p)``, ``not(torch)``, ``match(x)``: after a keyword the parentheses group
    # an expression; they are not a call.
    return head not in _WEAK_MODULES and not keyword.iskeyword(head) and not keyword.issoftkeyword(head)


def _weak_words_only_on_safe_receivers(source: bytes, names: frozenset[str]) -> bool:
    """True when the text proves no load/loads/Unpickler can reach a weights loader (see above).

    *names*: every name the module's code objects use (``co_names``).
    """
    if not source.isascii():
        return False
    checked: dict[bytes, bool] = {}
    reflection: bool | None = None
    for match in _WEAK_WORD.finditer(source):
        dot = match.start() - 1
        if dot < 1 or source[dot] != 0x2E:
            return False
        if source[dot - 1] == 0x29:  # ``).load``
            if reflection is None:
                reflection = (
                    not _REFLECTION_NAMES.isdisjoint(names) or _STAR_IMPORT.search(source) is not None
                )
            if reflection or not _call_result_receiver(source, dot - 1):
                return False
            continue
        receiver = re.search(rb"(?<![\w.])[A-Za-z_]\w*$", source[max(0, dot - 64) : dot])
        if receiver is None:
            return False
        name = receiver.group()
        if name not in checked:
            checked[name] = _plain_reader_receiver(source, name)
        if not checked[name]:
            return False
    return True


def needs_ast(code: CodeType, source: str | bytes | None = None, extra: frozenset[str] = frozenset()) -> bool:
    """True when the compiled module (or any nested function, class, lambda) mentions a trigger name.

    A weak trigger (``load``...) counts only when some code object also names a module it can
    belong to (``torch``, ``pickle``, ...): ``import json; json.load(f)`` needs no AST. With the
    module's *source*, a weak trigger beside such a module is still skipped where the text shows
    only plain data readers or call results using it (``json.load(f)``, ``Loader(p).load()``).
    *extra*: more strong trigger names (the last parts of configured helpers).
    """
    strong = _STRONG_TRIGGERS | extra if extra else _STRONG_TRIGGERS
    stack = [code]
    seen: list[CodeType] = []
    weak = False
    while stack:
        current = stack.pop()
        seen.append(current)
        if not strong.isdisjoint(current.co_names):
            return True
        weak = weak or not _WEAK_TRIGGERS.isdisjoint(current.co_names)
        for const in current.co_consts:
            if type(const) is CodeType:
                stack.append(const)
            elif type(const) is str:
                if const in strong:
                    return True
                weak = weak or const in _WEAK_TRIGGERS
            elif type(const) is tuple:
                if not strong.isdisjoint(const):
                    return True
                weak = weak or not _WEAK_TRIGGERS.isdisjoint(const)
    if not weak:
        return False
    if not any(
        name.partition(".")[0] in _WEAK_MODULES
        for current in seen
        for name in (*current.co_names, *(c for c in current.co_consts if type(c) is str))
    ):
        return False
    if source is None:
        return True
    text = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    return not _weak_words_only_on_safe_receivers(text, frozenset().union(*(c.co_names for c in seen)))

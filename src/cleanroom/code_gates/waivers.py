"""Inline waivers: ``# cleanroom: allow[CR501] reviewed the remote code at revision abc123``.

A waiver is a *comment* (strings that merely contain the text do not count) naming one or more
rule ids and a non-empty reason. It covers violations whose node spans its line (so a waiver on the
closing line of a multi-line call covers the call); a waiver alone on its line covers the next line
of code instead. A waiver with no reason, or naming an unknown rule, is itself
a violation (CR902): an unexplained exception is how gates rot.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import asdict, dataclass

from cleanroom.code_gates.rules import RULES_BY_ID
from cleanroom.code_gates.violation import Violation

_WAIVER = re.compile(r"#\s*cleanroom:\s*allow\[([^\]]*)\]\s*(.*?)\s*$")  # one comment token
# The prefilter over the whole text: no anchor, so a waiver on any line is a candidate (``_WAIVER``'s
# ``$`` without re.M only matched on the last line, which silently dropped every other waiver).
_CANDIDATE = re.compile(r"#\s*cleanroom:\s*allow\[")


@dataclass(frozen=True)
class Waiver:
    """A waiver comment and the line of code it covers."""

    path: str
    line: int
    covers_line: int
    rules: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"rules": list(self.rules)}


def find_waivers(source: str, path: str) -> tuple[list[Waiver], list[Violation]]:
    """The waivers in *source*, and CR902 violations for malformed ones.

    A cheap regex pass finds candidates; only files that have one are tokenized, so the common
    case (no waiver) costs one substring test over the text.
    """
    if "cleanroom:" not in source or not _CANDIDATE.search(source):
        return [], []
    waivers: list[Waiver] = []
    bad: list[Violation] = []
    lines = source.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return [], []  # the file does not parse; CR901 reports it
    code_lines = {tok.start[0] for tok in tokens if tok.type not in _NON_CODE}
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        match = _WAIVER.search(tok.string)
        if match is None:
            continue
        line, col = tok.start
        rules = tuple(r.strip() for r in match.group(1).split(",") if r.strip())
        reason = match.group(2)
        unknown = [r for r in rules if r not in RULES_BY_ID]
        if not rules or unknown or not reason:
            problem = (
                "names no rule"
                if not rules
                else f"names unknown rule(s) {', '.join(unknown)}"
                if unknown
                else "has no reason"
            )
            bad.append(
                Violation(path, line, col + 1, "CR902", f"waiver {problem}; {RULES_BY_ID['CR902'].fix}")
            )
            continue
        covers = line
        if not lines[line - 1][:col].strip():  # a comment alone on its line covers the next code line
            covers = next((n for n in range(line + 1, len(lines) + 1) if n in code_lines), line)
        waivers.append(Waiver(path, line, covers, rules, reason))
    return waivers, bad


_NON_CODE = frozenset(
    {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
)

"""One finding of the code gates, and the callback the rules report findings through."""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass
from typing import Protocol


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
        fields = asdict(self)
        del fields["callee"]  # CR401's internal exemption key, not part of the report
        return fields | {"end_line": self.last_line}


class Report(Protocol):
    """``add(node, rule, what, callee="")``: record a finding of *rule* at *node* (see ``check_tree``)."""

    def __call__(self, node: ast.AST, rule: str, what: str, callee: str = "") -> None: ...

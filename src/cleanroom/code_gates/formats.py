"""The report in the formats CI tools read: GitHub workflow annotations and SARIF 2.1.0.

SARIF is what code-scanning dashboards (GitHub code scanning, Azure DevOps, VS Code's viewer)
import; every result carries the baseline fingerprint as a partial fingerprint, so a dashboard
tracks a finding across line shifts the same way ``--baseline`` does. The folders the walk skipped by
default are run-level notes (``invocations[0].toolExecutionNotifications``), one per folder, so a
dashboard shows what was not checked; so are the rules that did not run (``rule-not-run``, with the
rule), what each ``per_path_ignores`` pattern kept out (``per-path-ignore``) and each file that could not
be checked (``file-not-checked``): a result list without a rule's findings never reads as that rule passing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cleanroom.code_gates.baseline import keys, relative_path
from cleanroom.code_gates.report import Notice
from cleanroom.code_gates.rules import RULES, RULES_BY_ID
from cleanroom.code_gates.violation import Violation

_SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def _escape(text: str, prop: bool = False) -> str:
    """GitHub's workflow-command escaping (properties also escape ``:`` and ``,``)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def _skipped(path: str, n: int) -> dict[str, object]:
    """The SARIF notification for a folder skipped by default holding *n* ``.py`` files."""
    return {
        "level": "note",
        "descriptor": {"id": "skipped-by-default"},
        "message": {
            "text": f"{path}/: {n} .py file{'' if n == 1 else 's'} not checked (skipped by default); "
            "--no-default-excludes (default_excludes = false) checks them"
        },
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": f"{path}/", "uriBaseId": "SRCROOT"}}}],
    }


def _notification(notice: Notice, index: dict[str, int], root: Path) -> dict[str, object]:
    """A :class:`Notice` as a SARIF notification: ``warning`` for a file not checked, ``note`` otherwise."""
    out: dict[str, object] = {
        "level": "warning" if notice.kind == "file-not-checked" else "note",
        "descriptor": {"id": notice.kind},
        "message": {"text": notice.text},
    }
    if notice.rule is not None:
        out["associatedRule"] = {"id": notice.rule, "index": index[notice.rule]}
    if notice.path is not None:
        uri = relative_path(notice.path, root)  # as the results' locations are written
        out["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "SRCROOT"}}}]
    return out


def github_lines(violations: tuple[Violation, ...]) -> list[str]:
    """One ``::error`` workflow command per finding: an annotation on the line in the pull request."""
    return [
        f"::error file={_escape(v.path, True)},line={v.line},endLine={v.last_line},col={v.col},"
        f"title={_escape(f'{v.rule} {RULES_BY_ID[v.rule].name}', True)}::{_escape(v.message)}"
        for v in violations
    ]


def github_notices(notices: Sequence[Notice]) -> list[str]:
    """One ``::notice`` workflow command per thing the run did not check (on the file when it names one)."""
    return [
        f"::notice {f'file={_escape(n.path, True)},' if n.path else ''}title={_escape(f'cleanroom gates {n.kind}', True)}"
        f"::{_escape(n.text)}"
        for n in notices
    ]


def sarif(
    violations: tuple[Violation, ...],
    root: Path,
    version: str,
    skipped: tuple[tuple[str, int], ...] = (),
    notices: Sequence[Notice] = (),
) -> dict[str, object]:
    """A SARIF 2.1.0 log with one run: every rule described, one result per finding, one note per
    folder in *skipped* (root-relative path, ``.py`` files it held) and per :class:`Notice` (a rule not run,
    a per-path ignore, a file not checked)."""
    index = {rule.id: i for i, rule in enumerate(RULES)}
    results = [
        {
            "ruleId": v.rule,
            "ruleIndex": index[v.rule],
            "level": "error",
            "message": {"text": v.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": rel, "uriBaseId": "SRCROOT"},
                        "region": {"startLine": v.line, "startColumn": v.col, "endLine": v.last_line},
                    }
                }
            ],
            "partialFingerprints": {"cleanroomGates/v1": fp},
        }
        for (_, rel, fp), v in zip(keys(violations, root), violations, strict=True)
    ]
    rules = [
        {
            "id": rule.id,
            "name": rule.name,
            "shortDescription": {"text": rule.forbids},
            "help": {"text": rule.fix},
            "defaultConfiguration": {"enabled": rule.default, "level": "error"},
        }
        for rule in RULES
    ]
    notes = [_skipped(path, n) for path, n in skipped]
    notes += [_notification(n, index, Path(root)) for n in notices]
    return {
        "$schema": _SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "cleanroom-gates", "version": version, "rules": rules}},
                "originalUriBaseIds": {"SRCROOT": {"uri": Path(root).resolve().as_uri() + "/"}},
                "results": results,
                "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notes}],
            }
        ],
    }

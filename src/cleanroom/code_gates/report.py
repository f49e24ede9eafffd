"""What one gate run found, and what it did not look at.

Fail closed: a rule that did not run is never reported as a rule that passed. The report says which
rules did not run and why (not selected, disabled, off by default, or ignored on every file by
``per_path_ignores``), how many findings each ``per_path_ignores`` pattern kept out of the report,
and which files were not checked at all (unreadable, a broken link, a FIFO or device named ``*.py``).
In JSON a rule that did not run counts ``null``, never ``0``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cleanroom.code_gates.config import GateConfig
from cleanroom.code_gates.files import rel_posix, skipped_note
from cleanroom.code_gates.rules import RULES, RULES_BY_ID
from cleanroom.code_gates.violation import Violation
from cleanroom.code_gates.waivers import Waiver
from cleanroom.errors import GateError


@dataclass(frozen=True)
class PathIgnore:
    """One ``per_path_ignores`` pattern as it applied: the rules it turned off that would otherwise have run,
    the checked files it matched, and the findings it kept out of the report (per rule, 0 included)."""

    pattern: str
    rules: tuple[str, ...]
    files: int
    findings: tuple[tuple[str, int], ...]

    def note(self) -> str:
        """``per_path_ignores "scripts/*": CR101, CR501 not run on 2 files; 3 finding(s) not reported (CR101: 3)``."""
        total = sum(n for _, n in self.findings)
        per_rule = ", ".join(f"{r}: {n}" for r, n in self.findings if n)
        return (
            f'per_path_ignores "{self.pattern}": {", ".join(self.rules)} not run on {self.files} '
            f"file{'' if self.files == 1 else 's'}; {total} finding(s) not reported" + (f" ({per_rule})" if per_rule else "")
        )

    def to_dict(self) -> dict[str, object]:
        return {"pattern": self.pattern, "rules": list(self.rules), "files": self.files,
                "findings_not_reported": dict(self.findings)}


@dataclass(frozen=True)
class Notice:
    """One thing the run did not check, for formats that carry notes beside findings (SARIF, GitHub).

    *kind*: ``rule-not-run``, ``per-path-ignore`` or ``file-not-checked``; *rule* and *path* when it has one."""

    kind: str
    text: str
    rule: str | None = None
    path: str | None = None


class NotRunWording(NamedTuple):
    """How one cause of a rule not running is said: in the gates' report (*report*: the summary's ``rules not
    run`` line, JSON ``rules_not_run``, the SARIF and GitHub notices) and in the pytest item's skip (*item*)."""

    report: str  # may name {rule}
    item: str  # may name {source}, the config file


#: Why a rule ran on no file, by cause: the one source of both wordings, so the report and the pytest items
#: never disagree on a cause (:func:`not_run_cause` decides it, in this order).
NOT_RUN: dict[str, NotRunWording] = {
    "disabled": NotRunWording("disabled: disable / --ignore", "is disabled in {source}"),
    "off by default": NotRunWording("off by default: --extend-select {rule} runs it",
                                    "is off by default; add it to select in {source}"),
    "not selected": NotRunWording("not selected: select / --select", "is not in select in {source}"),
    "ignored everywhere": NotRunWording("per_path_ignores cover every file checked",
                                        "is turned off on every file gated by per_path_ignores in {source}"),
}


def not_run_cause(rule: str, config: GateConfig, ignored_everywhere: frozenset[str] = frozenset()) -> str | None:
    """The :data:`NOT_RUN` cause of *rule* running on no file under *config* (its select and disable, then
    *ignored_everywhere*: the rules per_path_ignores turned off on every checked file), None when it ran."""
    if rule in config.disable:
        return "disabled"
    if rule not in config.select:
        return "not selected" if RULES_BY_ID[rule].default else "off by default"
    return "ignored everywhere" if rule in ignored_everywhere else None


def not_run_reason(rule: str, config: GateConfig, ignored_everywhere: frozenset[str] = frozenset()) -> str | None:
    """Why *rule* runs on no file, as the report says it (:func:`not_run_cause`), None when it runs."""
    cause = not_run_cause(rule, config, ignored_everywhere)
    return None if cause is None else NOT_RUN[cause].report.format(rule=rule)


def not_run_skip(rule: str, cause: str, source: str) -> str:
    """The pytest item's skip for *rule* not run for *cause*: ``CR201 is disabled in pyproject.toml: it did not run``."""
    return f"{rule} {NOT_RUN[cause].item.format(source=source)}: it did not run"


@dataclass(frozen=True)
class GateReport:
    """Everything one gate run found; ``ok`` when no violation is left after waivers.

    ``ok`` says nothing about rules that did not run: :meth:`not_run` lists them with the reason."""

    violations: tuple[Violation, ...]
    waivers: tuple[Waiver, ...]
    unused_waivers: tuple[Waiver, ...]
    files_checked: int  # files read and checked; those that could not be are in ``not_checked``
    config: GateConfig
    baselined: int = 0  # findings a baseline accounted for (not in ``violations``)
    stale: tuple[tuple[str, str, str], ...] = ()  # baseline entries (rule, path, fingerprint) gone
    skipped: tuple[tuple[str, int], ...] = ()  # (root-relative folder, .py files in it) left out by default
    not_checked: tuple[tuple[str, str], ...] = ()  # (path, what kept it from being checked): no rule ran on it
    path_ignores: tuple[PathIgnore, ...] = ()  # each per_path_ignores pattern that matched a checked file
    ignored_everywhere: frozenset[str] = frozenset()  # rules per_path_ignores turned off on every checked file

    @property
    def ok(self) -> bool:
        return not self.violations

    def not_run(self) -> dict[str, str]:
        """Rule id → why it ran on no file (config order of :data:`RULES`); rules not listed ran."""
        out: dict[str, str] = {}
        for rule in RULES:
            reason = not_run_reason(rule.id, self.config, self.ignored_everywhere)
            if reason is not None:
                out[rule.id] = reason
        return out

    def counts(self) -> dict[str, int]:
        """Violations per rule id, every known rule listed (0 included; see :meth:`not_run` for the rules that ran)."""
        counted = Counter(v.rule for v in self.violations)
        return {rule: counted.get(rule, 0) for rule in RULES_BY_ID}

    def lines(self) -> list[str]:
        return [v.format() for v in self.violations]

    def summary(self) -> list[str]:
        """The summary a person reads: totals, every waiver with its reason, then what was not checked."""
        broken = {r: n for r, n in self.counts().items() if n}
        per_rule = ", ".join(f"{r}: {n}" for r, n in broken.items())
        ran = len(RULES) - len(self.not_run())
        out = [
            f"cleanroom gates: {self.files_checked} files"
            + (f", {len(self.not_checked)} not checked" if self.not_checked else "")
            + f", {len(self.violations)} violation(s)"
            + (f" ({per_rule})" if per_rule else "")
            + f", {len(self.waivers)} waiver(s)"
            + (f", {len(self.unused_waivers)} unused" if self.unused_waivers else "")
            + f"; {ran} of {len(RULES)} rules ran"
        ]
        out += [f"  waived {w.path}:{w.covers_line} {','.join(w.rules)}: {w.reason}" for w in self.waivers]
        out += [
            f"  unused waiver {w.path}:{w.line} {','.join(w.rules)}: {w.reason}" for w in self.unused_waivers
        ]
        out += [f"  {line}" for line in self._unchecked_lines()]
        out.append(f"  config: {self.config_note()}")
        if self.baselined or self.stale:
            out.append(
                f"  baseline: {self.baselined} accepted finding(s) not shown, {len(self.stale)} "
                + ("entry no longer occurs" if len(self.stale) == 1 else "entries no longer occur")
                + (" (rewrite it with --write-baseline to drop them)" if self.stale else "")
            )
        out += [f"  fixed since the baseline: {path} {rule} ({fp})" for rule, path, fp in self.stale]
        if self.skipped:
            out.append(f"  {skipped_note(self.skipped)}")
        return out

    def _unchecked_lines(self) -> list[str]:
        """``rules not run: CR101, CR501 (not selected ...); CR103 (off by default ...)``, the per-path ignores, the
        files not checked."""
        by_reason: dict[str, list[str]] = {}
        for rule, reason in self.not_run().items():
            by_reason.setdefault(reason, []).append(rule)
        out = []
        if by_reason:
            out.append("rules not run: " + "; ".join(f"{', '.join(r)} ({why})" for why, r in by_reason.items()))
        out += [p.note() for p in self.path_ignores]
        out += [f"not checked: {path}: {why}" for path, why in self.not_checked]
        return out

    def notices(self) -> list[Notice]:
        """What the run did not check, one :class:`Notice` each (rules not run, per-path ignores, files)."""
        out = [Notice("rule-not-run", f"{rule} did not run: {why}", rule=rule) for rule, why in self.not_run().items()]
        out += [Notice("per-path-ignore", p.note()) for p in self.path_ignores]
        out += [Notice("file-not-checked", f"{path}: not checked: {why}", path=path) for path, why in self.not_checked]
        return out

    def config_note(self) -> str:
        """Which settings applied: ``pyproject.toml``, or ``defaults, no [tool.cleanroom.gates] found above src``."""
        if self.config.source != "defaults":
            return display(Path(self.config.source).resolve())
        if not self.config.searched_from:
            return "defaults"
        above = display(Path(self.config.searched_from))
        return f"defaults, no [tool.cleanroom.gates] found above {'the current folder' if above == '.' else above}"

    def to_dict(self) -> dict[str, object]:
        """The report as JSON: ``counts`` holds ``null`` for a rule that did not run (``rules_not_run`` says why)."""
        not_run = self.not_run()
        return {
            "ok": self.ok,
            "files_checked": self.files_checked,
            "files_not_checked": [{"path": p, "reason": why} for p, why in self.not_checked],
            "counts": {rule: None if rule in not_run else n for rule, n in self.counts().items()},
            "rules_not_run": not_run,
            "per_path_ignores_applied": [p.to_dict() for p in self.path_ignores],
            "violations": [v.to_dict() for v in self.violations],
            "waivers": [w.to_dict() for w in self.waivers],
            "unused_waivers": [w.to_dict() for w in self.unused_waivers],
            "config": self.config.to_dict(),
            "baselined": self.baselined,
            "stale_baseline_entries": [{"rule": r, "path": p, "fingerprint": f} for r, p, f in self.stale],
            "skipped_by_default": [{"path": p, "python_files": n} for p, n in self.skipped],
        }

    def raise_if_failed(self) -> None:
        """Raise :class:`GateError` listing the violations (for pipeline preflight)."""
        if self.violations:
            shown = "\n".join(self.lines()[:20])
            more = f"\n... and {len(self.violations) - 20} more" if len(self.violations) > 20 else ""
            raise GateError(f"{len(self.violations)} code gate violation(s):\n{shown}{more}")


def display(path: Path) -> str:
    """A path as the user wants to click it: relative to the cwd when under it."""
    return rel_posix(path, os.getcwd())


class PathIgnoreTally:
    """Counts, over one run, what each ``per_path_ignores`` pattern turned off and kept out of the report.

    A finding (and a file) is put down to the first pattern, in config order, that matches the file and
    names the rule; the rules already off everywhere (not selected, disabled) are not the pattern's doing."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.files: Counter[str] = Counter()
        self.findings: Counter[tuple[str, str]] = Counter()
        self.ran: set[str] = set()
        self.checked = 0

    def add_file(self, rel: str, suppressed: list[str],
                 covering: tuple[tuple[str, frozenset[str]], ...] | None = None) -> None:
        """A checked file (root-relative *rel*) and the rule of each finding its per-path ignores kept out;
        *covering* is ``config.path_ignores_for(rel)`` when the caller matched it already (each pattern once)."""
        self.checked += 1
        off = self.config.off
        covering = self.config.path_ignores_for(rel) if covering is None else covering
        self.ran |= set(RULES_BY_ID) - self.config.off_for(rel, covering)
        matched = [(p, rules) for p, rules in covering if rules - off]
        for pattern, _ in matched:
            self.files[pattern] += 1
        for rule in suppressed:
            first = next((p for p, rules in matched if rule in rules), None)
            if first is not None:
                self.findings[(first, rule)] += 1

    def result(self) -> tuple[tuple[PathIgnore, ...], frozenset[str]]:
        """(one :class:`PathIgnore` per pattern that matched a checked file; the rules that ran on no checked
        file only because of the per-path ignores — empty when no file was checked)."""
        applied = []
        for pattern, rules in self.config.per_path_ignores:
            if self.files[pattern]:
                turned_off = tuple(sorted(rules - self.config.off))
                found = tuple((r, self.findings[(pattern, r)]) for r in turned_off)
                applied.append(PathIgnore(pattern, turned_off, self.files[pattern], found))
        everywhere = frozenset(RULES_BY_ID) - self.config.off - self.ran if self.checked else frozenset()
        return tuple(applied), everywhere


__all__ = ["NOT_RUN", "GateReport", "Notice", "NotRunWording", "PathIgnore", "PathIgnoreTally", "display",
           "not_run_cause", "not_run_reason", "not_run_skip"]

"""The gates as pytest items: ``pytest --cleanroom-gates`` adds one test per rule.

``--cleanroom-gates-paths=a,b`` gates other paths than the configured ones.

One item per rule (``cleanroom-gates::CR101`` ...) rather than one per file: a red item names the
rule that broke and lists every ``path:line:col`` under it, and ``-k CR5`` selects the unsafe-loading
rules. The gates run once per session (on first use) and every item reads the same report. The
waivers appear in the terminal summary, so an exception is never silent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanroom.code_gates.config import GateConfig, load_config
from cleanroom.code_gates.report import GateReport, not_run_cause, not_run_skip
from cleanroom.code_gates.rules import RULES, Rule
from cleanroom.code_gates.runner import run_gates
from cleanroom.code_gates.violation import Violation
from cleanroom.errors import CleanroomError


class GateViolations(Exception):
    """Raised by a gate item; carries the rule's violations for the failure report."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__(f"{len(violations)} violation(s)")
        self.violations = violations


class GatesPlugin:
    """Registered by cleanroom's pytest plugin when ``--cleanroom-gates`` is given."""

    def __init__(self, config: pytest.Config, paths: str | None) -> None:
        """*paths*: the ``--cleanroom-gates-paths`` value (comma-separated), None for the configured ones."""
        try:
            self.gate_config: GateConfig = load_config(start=config.rootpath)
        except CleanroomError as exc:
            raise pytest.UsageError(f"--cleanroom-gates: {exc}") from exc
        self.paths: list[Path] | None = None
        if paths is not None:
            parts = [p.strip() for p in paths.split(",") if p.strip()]
            if not parts:
                raise pytest.UsageError(
                    f"--cleanroom-gates-paths={paths!r} names no path; write e.g. --cleanroom-gates-paths=src,scripts"
                )
            self.paths = [config.invocation_params.dir / p for p in parts]
        self._report: GateReport | None = None

    def report(self) -> GateReport:
        if self._report is None:
            self._report = run_gates(self.gate_config, self.paths)
        return self._report

    @pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so they apply to gate items too
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        collector = GatesCollector.from_parent(session, name="cleanroom-gates", nodeid="cleanroom-gates")
        collector.plugin = self
        items.extend(collector.collect())

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        if self._report is not None:
            terminalreporter.section("cleanroom gates")
            for line in self._report.summary():
                terminalreporter.write_line(line)


class GatesCollector(pytest.Collector):
    """The parent of the per-rule items (nodeid ``cleanroom-gates``)."""

    plugin: GatesPlugin

    def collect(self) -> list[pytest.Item]:
        return [GateItem.from_parent(self, name=rule.id, rule=rule) for rule in RULES]


class GateItem(pytest.Item):
    """One rule over the user's code: passes when the rule has no violation left after waivers."""

    def __init__(self, *, rule: Rule, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.rule = rule

    def runtest(self) -> None:
        plugin = self.parent.plugin  # type: ignore[union-attr]
        source = plugin.gate_config.source
        if (cause := not_run_cause(self.rule.id, plugin.gate_config)) is not None:  # before the gates run
            pytest.skip(not_run_skip(self.rule.id, cause, source))
        try:
            report = plugin.report()
        except CleanroomError as exc:
            pytest.fail(f"the gates could not run: {exc}", pytrace=False)
        if (cause := not_run_cause(self.rule.id, plugin.gate_config, report.ignored_everywhere)) is not None:
            pytest.skip(not_run_skip(self.rule.id, cause, source))
        mine = [v for v in report.violations if v.rule == self.rule.id]
        if mine:
            raise GateViolations(mine)

    def repr_failure(self, excinfo, style=None):  # type: ignore[no-untyped-def]
        if isinstance(excinfo.value, GateViolations):
            head = f"{self.rule.id} {self.rule.name}: {self.rule.forbids}"
            return "\n".join([head, *(v.format() for v in excinfo.value.violations)])
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):  # type: ignore[no-untyped-def]
        return self.path, None, f"cleanroom gate {self.rule.id} {self.rule.name}"

"""What ``cleanroom gates`` does, as one library call: configure, check, apply or write a baseline, format.

The command line parses its flags and prints what :func:`gates_command` returns; nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cleanroom._version import __version__
from cleanroom.code_gates.baseline import apply_baseline, read_baseline, write_baseline
from cleanroom.code_gates.config import load_config, with_overrides
from cleanroom.code_gates.discovery import config_for_paths
from cleanroom.code_gates.formats import github_lines, github_notices, sarif
from cleanroom.code_gates.rules import RULES
from cleanroom.code_gates.runner import run_gates

FORMATS = ("text", "json", "github", "sarif")


@dataclass(frozen=True)
class CommandOutput:
    """Lines for standard output and standard error, and the exit code (0 clean, 1 findings)."""

    stdout: tuple[str, ...]
    stderr: tuple[str, ...] = ()
    exit_code: int = 0


def rule_lines() -> tuple[str, ...]:
    """One line per rule: id, name, what it forbids and where."""
    return tuple(f"{r.id} {r.name}: {r.forbids} ({'outside loader modules' if r.loader_exempt else 'everywhere'}"
                 f"{'' if r.default else ', off by default'})" for r in RULES)


def gates_command(
    *,
    config: str | None,
    paths: Sequence[str] = (),
    fmt: str = "text",
    loader_modules: list[str] | None = None,
    exclude: list[str] | None = None,
    select: list[str] | None = None,
    extend_select: list[str] | None = None,
    ignore: list[str] | None = None,
    baseline: str | None = None,
    write_baseline_to: str | None = None,
    use_cache: bool = True,
    default_excludes: bool | None = None,
) -> CommandOutput:
    """Run the gates over *paths* (default: the configured ones) and return what to print and the exit code.

    ``write_baseline_to`` records today's findings and exits 0; ``baseline`` reports only the findings it
    does not hold (and the stale entries it holds). ``fmt``: one of :data:`FORMATS`. ``default_excludes``:
    False checks the folders skipped by default (None: as configured).
    """
    if config is None:
        found, start = config_for_paths(paths)  # the table above the PATHs; InputError when they disagree
        loaded = load_config(found, start=start)
    else:
        loaded = load_config(config)
    cfg = with_overrides(loaded, loader_modules=loader_modules, exclude=exclude, select=select,
                         extend_select=extend_select, ignore=ignore, default_excludes=default_excludes)
    accepted = read_baseline(baseline) if baseline else None
    report = run_gates(cfg, list(paths) or None, use_cache=use_cache)
    if write_baseline_to:
        n = write_baseline(report.violations, cfg.root, write_baseline_to)
        return CommandOutput((f"cleanroom gates: wrote {n} finding(s) to {write_baseline_to}; run with --baseline "
                              f"{write_baseline_to} to fail only on new ones",))
    if accepted is not None:
        new, baselined, stale = apply_baseline(report.violations, cfg.root, accepted)
        report = replace(report, violations=new, baselined=baselined, stale=stale)
    code = 0 if report.ok else 1
    if fmt == "json":
        return CommandOutput((json.dumps(report.to_dict(), indent=2, sort_keys=True),), exit_code=code)
    if fmt == "sarif":
        log = sarif(report.violations, cfg.root, __version__, report.skipped, report.notices())
        return CommandOutput((json.dumps(log, indent=1),), exit_code=code)
    github = fmt == "github"
    lines = tuple(github_lines(report.violations) + github_notices(report.notices()) if github else report.lines())
    summary = tuple(report.summary())
    return CommandOutput(lines + (() if report.ok else summary), summary if report.ok else (), code)


__all__ = ["FORMATS", "CommandOutput", "gates_command", "rule_lines"]

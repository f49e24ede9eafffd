"""The subcommand modules, in the order ``cleanroom --help`` lists them (an explicit list, no registry)."""

from __future__ import annotations

from cleanroom.cli import eval_cmd, fixtures_cmd, gates_cmd, models, run_cmd, runs

MODULES = [run_cmd, fixtures_cmd, models, runs, gates_cmd, eval_cmd]

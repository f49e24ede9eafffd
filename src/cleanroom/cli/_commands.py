"""The subcommand modules, in the order ``cleanroom --help`` lists them (an explicit list, no registry)."""

from __future__ import annotations

from cleanroom.cli import fixtures_cmd

MODULES = [fixtures_cmd]

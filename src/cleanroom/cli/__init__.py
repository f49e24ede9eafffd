"""The ``cleanroom`` command: thin; each subcommand parses its arguments and calls one library function.

Exit codes everywhere: 0 ok, 1 a check found a problem, 2 usage or input error. A
:class:`~cleanroom.errors.CleanroomError` becomes a one-line message (no traceback unless ``--debug``).
Each subcommand module exposes ``add_parser(subparsers)``; modules must import nothing heavy at
import time (torch and transformers are imported inside the handlers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cleanroom.cli import _commands
from cleanroom.errors import CleanroomError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cleanroom",
        description="Verification harness for post-training open base models.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _commands.MODULES:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line, before or after the subcommand
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    # key=value overrides may follow options (argparse stops filling a positional list at the first option)
    args, extra = parser.parse_known_args(argv)
    args.debug = debug
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return int(args.handler(args) or 0)
    except CleanroomError as exc:
        if args.debug:
            raise
        print(f"cleanroom {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a path the user named cannot be read or written: an input error, not a crash
        if args.debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"cleanroom {args.command}: {type(exc).__name__}:{where}: {exc.strerror or exc}; check the path "
              "and its permissions (--debug shows the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cleanroom {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``cleanroom`` command: thin; each subcommand parses its arguments and calls one library function.

Exit codes everywhere: 0 ok, 1 a check found a problem, 2 usage or input error. A
:class:`~cleanroom.errors.CleanroomError` becomes a one-line message (``--debug`` adds the traceback and
keeps the exit code); so do a missing ``train`` package on the core install (the install hint, exit 2), a
file that is not UTF-8 and an unreadable path (exit 2).
Each subcommand module exposes ``add_parser(subparsers)``; modules must import nothing heavy at
import time (torch and transformers are imported inside the handlers).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from cleanroom.cli import _commands
from cleanroom.errors import CleanroomError, missing_train_extra


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
        return _fail(args, exc, f"{type(exc).__name__}: {exc}", exc.exit_code)
    except ImportError as exc:  # a command of the train extra on the core install
        hint = missing_train_extra(exc)
        if hint is None:
            raise
        return _fail(args, exc, f"DependencyError: {hint}", hint.exit_code)
    except UnicodeDecodeError as exc:  # a file read outside the JSONL reader (a tokenizer, a profile): input
        return _fail(args, exc, f"input is not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                     "re-encode the file as UTF-8 (--debug shows which file)", 2)
    except OSError as exc:  # a path the user named cannot be read or written: an input error, not a crash
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(args, exc, f"{type(exc).__name__}:{where}: {exc.strerror or exc}; check the path "
                     "and its permissions (--debug shows the traceback)", 2)
    except KeyboardInterrupt:
        print(f"cleanroom {args.command}: interrupted", file=sys.stderr)
        return 130


def _fail(args: argparse.Namespace, exc: BaseException, message: str, code: int) -> int:
    """One line on stderr and the exit code; ``--debug`` adds the traceback but keeps the code (2 stays 2)."""
    if args.debug:
        traceback.print_exception(exc)
    print(f"cleanroom {args.command}: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

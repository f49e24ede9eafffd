"""The ``cleanroom`` command: thin; each subcommand parses its arguments and calls one library function.

Exit codes everywhere: 0 ok, 1 a check found a problem, 2 usage or input error. A
:class:`~cleanroom.errors.CleanroomError` becomes a one-line message (``--debug`` adds the traceback and
keeps the exit code); so do a missing ``train`` package on the core install and a class transformers refuses
for a missing backend package (the install hint, exit 2), a file that is not UTF-8 and an unreadable path
(exit 2), and a usage error (argparse's, on one line: exit 2).
Anything else escaping a handler is a bug met on input cleanroom did not foresee: one line naming the
exception, exit 2 (the command did not do its job; never 0, and never 1, which says a check ran and found a
problem), and the traceback in a file the line names (``--debug`` prints it instead).
Each subcommand module exposes ``add_parser(subparsers)``; modules must import nothing heavy at
import time (torch and transformers are imported inside the handlers).
"""

from __future__ import annotations

import argparse
import errno
import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import NoReturn

from cleanroom.cli import _commands
from cleanroom.errors import CleanroomError, missing_backend, missing_train_extra, one_line


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (exit 2), like every other error of the command line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    except ImportError as exc:  # a command of the train extra on the core install, a class's missing backend
        hint = missing_train_extra(exc) or missing_backend(exc)
        if hint is None:  # another import failed (a library's API moved): not the user's input, said as such
            return _unexpected(args, exc)
        return _fail(args, exc, f"DependencyError: {hint}", hint.exit_code)
    except UnicodeDecodeError as exc:  # a file read outside the JSONL reader (a tokenizer, a profile): input
        return _fail(args, exc, f"input is not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                     "re-encode the file as UTF-8 (--debug shows which file)", 2)
    except OSError as exc:  # a path the user named cannot be read or written: an input error, not a crash
        where = f" {exc.filename}" if exc.filename else ""
        fix = _OS_FIXES.get(exc.errno or 0, "check the path and its permissions")
        return _fail(args, exc, f"{type(exc).__name__}:{where}: {exc.strerror or exc}; {fix} "
                     "(--debug shows the traceback)", 2)
    except KeyboardInterrupt:
        print(f"cleanroom {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last boundary: one line and exit 2, never a bare traceback
        return _unexpected(args, exc)


def _unexpected(args: argparse.Namespace, exc: BaseException) -> int:
    """An exception nobody foresaw: one line naming it, the traceback saved, exit 2 (never 1, a check's finding)."""
    return _fail(args, exc, f"unexpected {type(exc).__name__}: {one_line(exc)[:300]}; cleanroom "
                 f"did not finish this command and checked nothing further. {_saved_traceback(args, exc)}", 2)


#: What to do about an OSError, by errno (the path the user named is the wrong kind of thing, or the disk).
_OS_FIXES = {
    errno.EISDIR: "it is a directory where a file is needed: pass a file path",
    errno.ENOTDIR: "a part of that path is a file where a directory is needed: pass a directory",
    errno.EEXIST: "it exists and is not a directory: pass a directory, or a path that does not exist yet",
    errno.EACCES: "permission denied: make it readable (and writable for an output) or pass another path",
    errno.ENOSPC: "the disk is full: free space, then run the same command again",
}


def _saved_traceback(args: argparse.Namespace, exc: BaseException) -> str:
    """Where the traceback went: a file (so stderr stays one line and a long run need not be repeated with
    --debug to see it), or nowhere when --debug prints it or the file cannot be written."""
    if args.debug:
        return "The traceback is above"
    try:
        with tempfile.NamedTemporaryFile("w", prefix="cleanroom-traceback-", suffix=".txt", delete=False) as fh:
            traceback.print_exception(exc, file=fh)
    except OSError:
        return "Rerun with --debug for the traceback, and report it"
    return f"The traceback is in {fh.name}; please report it"


def _fail(args: argparse.Namespace, exc: BaseException, message: str, code: int) -> int:
    """One line on stderr and the exit code; ``--debug`` adds the traceback but keeps the code (2 stays 2)."""
    if args.debug:
        traceback.print_exception(exc)
    print(f"cleanroom {args.command}: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

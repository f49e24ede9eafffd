"""Crash-safe writes: a file is either its old bytes or its new bytes, never a torn mix.

:func:`atomic_write_bytes` writes a temp file in the target's directory, fsyncs it, ``os.replace``-s it over
the target and fsyncs the directory, so the rename itself survives a power cut. The file gets the
user's umask like one written with ``open()``.

A rename replaces whatever sits at the target, so every write first checks the target with
:func:`check_output_path`: absent or a regular file (a symlink is followed), under a directory that exists
or can be created and is writable. A device node, a FIFO or a socket is refused before anything is written
(renaming a file over ``/dev/null`` as root would replace it machine-wide), and an unwritable directory is
named as such instead of surfacing as an error about a temp file the user never heard of.
:class:`OutputGroup` replaces several outputs of one command together: nothing is renamed until every one
of them is written, so a command that fails half-way leaves no output of this invocation behind.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from cleanroom.errors import ConfigError, InputError, OutputPathError


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename inside it survives a crash; a filesystem that refuses is skipped."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask. Read from /proc where it is exposed: setting it to read it back (the portable
    way) briefly changes it for every thread."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask (``0o666 & ~umask``)."""
    return 0o666 & ~_umask()


_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def kind(mode: int) -> str:
    """What a file that is neither regular nor a directory is, by its ``st_mode`` (``a FIFO (named pipe)``...)."""
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _check_directory(directory: Path, label: str) -> None:
    """OutputPathError unless *directory*, or its nearest existing ancestor (the rest is created), is a
    directory this process may create files in."""
    existing = directory
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{label}: {existing} is {'a file' if existing.is_file() else 'no directory'}, so "
                         "nothing can be written under it; pass a path inside a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{label}: directory {existing} is not writable; make it writable or pass a path in "
                         "another directory")


def check_output_path(path: str | os.PathLike[str], name: str | None = None) -> None:
    """OutputPathError, before anything is written, unless *path* (option *name*) can receive a file: it is absent
    or a regular file, and its directory exists (or can be created) and is writable.

    A symlink is followed (one to ``/dev/null`` is refused like ``/dev/null``); a dangling one is fine, the
    rename replaces the link itself.
    """
    target = Path(path)
    label = f"{name} {target}" if name else str(target)
    try:
        mode: int | None = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # absent; a parent that is no directory is named below
        mode = None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputPathError(f"{label}: is a symlink loop (the links never reach a file); remove the link or "
                             "pass another path") from None
        raise OutputPathError(f"{label}: cannot be examined ({exc.strerror}); pass another path") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputPathError(f"{label}: is a directory where a file is to be written; pass another path or remove "
                         "the directory")
    if mode is not None and not stat.S_ISREG(mode):
        what = kind(mode)
        raise OutputPathError(f"{label}: is {what}, not a regular file; writing would replace it with a file — pass "
                         "a file path")
    _check_directory(target.parent, label)


def _write_temp(target: Path, data: bytes) -> Path:
    """*data* in a fsynced temp file beside *target*, with the mode ``open()`` would give it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, open_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write *data* to *path* all-or-nothing: temp file in the same directory, fsync, ``os.replace``.

    ``mkstemp`` creates the temp file 0600; it gets ``0666 & ~umask`` before the rename, like a file
    written with ``open()``, so a collaborator on a shared box can read the run. The target is checked
    first (:func:`check_output_path`): only a regular file is ever replaced.
    """
    target = Path(path)
    if target.is_dir():  # else os.replace's error names the temp file, which the user never heard of
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(target))
    check_output_path(target)
    tmp = _write_temp(target, data)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


class OutputGroup:
    """The outputs of one command, replaced together (``with OutputGroup() as group: group.write(p, data)``).

    Each :meth:`write` checks its target and writes a fsynced temp file beside it at once; the renames
    happen only when the block ends without an exception. A failed write, or any error raised inside the
    block, removes every temp file and leaves every target as it was: a command never exits with one of
    its outputs new and another missing. (Only a rename itself failing after an earlier one succeeded
    could split them; a rename within one directory does not fail on a disk that took the temp file.)
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def write(self, path: str | os.PathLike[str], data: bytes) -> None:
        target = Path(path)
        check_output_path(target)
        if any(t == target for _, t in self._staged):
            raise ConfigError(f"{target}: written twice in one command; pass different paths")
        self._staged.append((_write_temp(target, data), target))

    def __enter__(self) -> OutputGroup:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        staged, self._staged = self._staged, []
        try:
            if exc_type is None:
                while staged:
                    tmp, target = staged[0]
                    os.replace(tmp, target)
                    staged.pop(0)
                    fsync_dir(target.parent)
        finally:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)


def refuse_replacing_foreign(name: str, path: os.PathLike[str] | None, is_own: Callable[[Path], bool],
                             what: str, fix: str = "remove that file or pass another path") -> None:
    """ConfigError when *path* holds a file that :func:`is_own` does not recognise as *what* (an output of the
    same command, told by its content): ``--summary notes.txt`` must not silently replace the notes. Only an
    absent path is free. An empty file is refused like any other that is not the command's own (fail closed:
    no command writes an empty output, and an empty file can be meaningful by being there: a package's
    ``__init__.py``, ``py.typed``, a placeholder someone made on purpose); *fix* ends the message.
    One rule for every command's outputs (``gates --write-baseline``, ``eval score``, ``eval make-set``)."""
    if path is None or not Path(path).is_file():
        return
    if not is_own(Path(path)):
        raise ConfigError(f"{name} {path}: exists and is not {what}; refusing to replace it — {fix}")


def _resolve(name: str, path: os.PathLike[str]) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError on a symlink loop
        raise InputError(f"{name} {path}: is a symlink loop (the links never reach a file); remove the link "
                         "or pass the file's own path") from None


def check_outputs(outputs: Mapping[str, os.PathLike[str] | None], inputs: Mapping[str, os.PathLike[str]]) -> None:
    """Before anything is written: OutputPathError unless every output (``{option: path}``; None: not asked for)
    can receive a file (:func:`check_output_path`), InputError for an input that is a symlink loop, ConfigError
    when an output is the same file as an input or another output: written in turn, the second write would
    replace the input it was computed from, or the first output, leaving a half-finished result behind."""
    seen: dict[Path, str] = {_resolve(name, p): name for name, p in inputs.items()}
    for name, path in outputs.items():
        if path is None:
            continue
        check_output_path(path, name)
        resolved = _resolve(name, path)
        if resolved in seen:
            raise ConfigError(f"{name} {path}: the same file as {seen[resolved]}; writing it would destroy "
                              f"{'that input' if seen[resolved] in inputs else 'that output'} — pass another path")
        seen[resolved] = name


__all__ = ["OutputGroup", "atomic_write_bytes", "check_output_path", "check_outputs", "fsync_dir", "open_mode",
           "refuse_replacing_foreign"]

"""Crash-safe writes: a file is either its old bytes or its new bytes, never a torn mix.

:func:`atomic_write_bytes` writes a temp file in the target's directory, fsyncs it, ``os.replace``-s it over
the target and fsyncs the directory, so the rename itself survives a power cut. The file gets the
user's umask like one written with ``open()``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cleanroom.errors import ConfigError


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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write *data* to *path* all-or-nothing: temp file in the same directory, fsync, ``os.replace``.

    ``mkstemp`` creates the temp file 0600; it gets ``0666 & ~umask`` before the rename, like a file
    written with ``open()``, so a collaborator on a shared box can read the run.
    """
    target = Path(path)
    if target.is_dir():  # else os.replace's error names the temp file, which the user never heard of
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def check_outputs(outputs: Mapping[str, os.PathLike[str] | None], inputs: Mapping[str, os.PathLike[str]]) -> None:
    """ConfigError before anything is written when an output (``{option: path}``; None: not asked for) is a
    directory, or is the same file as an input or another output: written in turn, the second write would
    replace the input it was computed from, or the first output, leaving a half-finished result behind."""
    seen: dict[Path, str] = {Path(p).resolve(): name for name, p in inputs.items()}
    for name, path in outputs.items():
        if path is None:
            continue
        if Path(path).is_dir():
            raise ConfigError(f"{name} {path}: is a directory where a file is to be written; pass another path "
                              "or remove the directory")
        resolved = Path(path).resolve()
        if resolved in seen:
            raise ConfigError(f"{name} {path}: the same file as {seen[resolved]}; writing it would destroy "
                              f"{'that input' if seen[resolved] in inputs else 'that output'} — pass another path")
        seen[resolved] = name


__all__ = ["atomic_write_bytes", "check_outputs", "fsync_dir"]

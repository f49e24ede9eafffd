"""Which files the gates see: the walk over the paths given, the user's excludes and the default ones.

Files and folders named explicitly are always checked. Only regular files are ever opened: a FIFO
named ``x.py`` blocks a read forever and a device may never end (or act on being opened), so
:func:`read_regular` looks before it opens, and a path named explicitly that is neither a folder nor
a regular file is an input error saying what it is. Hidden folders other than version control,
environments and caches are skipped by default out loud, as ``build/`` is: a ``.github/scripts/`` can
load a model as well as ``scripts/`` can. A folder the walk cannot list is an error (it
would pass code unseen); a folder skipped by default is listed in the report with its ``.py`` files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from cleanroom import fs
from cleanroom.code_gates.config import GateConfig
from cleanroom.errors import InputError, MissingFileError

#: Folders skipped at any depth while walking, as ruff's default excludes skip them: built, vendored or
#: installed code, not the repository's own. Skipped out loud: the report lists each one that held
#: Python files (``GateReport.skipped``); ``default_excludes = false`` / ``--no-default-excludes`` checks them.
DEFAULT_EXCLUDES = frozenset({"__pycache__", "node_modules", "build", "dist", "site-packages"})
#: Hidden folders that hold no code of the repository's own: version control, virtualenvs and tool
#: caches. Skipped silently, always (as any environment: a folder holding a virtualenv's ``pyvenv.cfg``
#: or a conda environment's ``conda-meta/``). Every *other* hidden
#: folder (``.github/scripts/``, a ``.hidden_pkg/``) can hold code that runs, so it is skipped by default
#: out loud, like :data:`DEFAULT_EXCLUDES`: listed with its ``.py`` files, checked with ``--no-default-excludes``.
SILENT_HIDDEN = frozenset(
    {".git", ".hg", ".svn", ".bzr", ".jj", ".venv", ".conda", ".tox", ".nox", ".direnv", ".eggs", ".pixi"}
    | {".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".ipynb_checkpoints", ".cache"}
)


def skipped_note(skipped: tuple[tuple[str, int], ...]) -> str:
    """``skipped 2 directories by default (build/, vendor/dist/: 14 .py files); ... checks them``."""
    shown = ", ".join(f"{path}/" for path, _ in skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
    files = sum(n for _, n in skipped)
    return (
        f"skipped {len(skipped)} {'directory' if len(skipped) == 1 else 'directories'} by default ({shown}: "
        f"{files} .py file{'' if files == 1 else 's'}); --no-default-excludes (default_excludes = false) checks them"
    )


def rel_posix(path: Path, root: str | Path) -> str:
    """``path.relative_to(root).as_posix()``, or the whole path when it is not under *root*.

    Lexical string work on the already-normalised paths (pathlib's relative_to costs more per call
    than the gates may spend on a whole file).
    """
    p, r = os.fspath(path), os.fspath(root)
    if p == r:
        return "."
    prefix = r if r.endswith(os.sep) else r + os.sep
    if p.startswith(prefix):
        p = p[len(prefix) :]
    return p.replace(os.sep, "/") if os.sep != "/" else p


def non_regular(mode: int) -> str | None:
    """None for a regular file's ``st_mode``, else what the file is (``a folder``, ``a FIFO (named pipe)``...)."""
    if stat.S_ISREG(mode):
        return None
    return "a folder" if stat.S_ISDIR(mode) else fs.kind(mode)


def read_regular(path: Path) -> bytes | str:
    """The bytes of *path* when it is a regular file; otherwise what it is (:func:`non_regular`), never
    opening it: reading a FIFO waits for a writer forever, a device may stream without end or act on
    open. The open is non-blocking and the opened file is checked again, so a path swapped for a FIFO
    between the look and the open is still not read. ``OSError`` when it cannot be looked at or read."""
    kind = non_regular(os.stat(path).st_mode)
    if kind is not None:
        return kind
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as handle:
        kind = non_regular(os.fstat(handle.fileno()).st_mode)
        return kind if kind is not None else handle.read()


def _never(rel: str) -> bool:
    return False


def iter_python_files(
    paths: Iterable[str | Path], config: GateConfig, skipped: dict[str, int] | None = None
) -> Iterator[Path]:
    """Python files under *paths* (absolute, sorted per folder). Files and folders named explicitly are
    always checked; files found by walking a folder skip ``exclude``, environments (virtualenv, conda) and the
    :data:`SILENT_HIDDEN` folders, and (with ``config.default_excludes``) the :data:`DEFAULT_EXCLUDES`
    folders and every other hidden folder, each of which that holds Python files is put in *skipped*
    (root-relative path → how many ``.py`` files).

    A folder that cannot be listed is an :class:`InputError`: skipping it would pass code unseen.
    """
    defaults = DEFAULT_EXCLUDES if config.default_excludes else frozenset()
    for given in paths:
        start = Path(given)
        if not start.is_absolute():
            start = Path.cwd() / start
        start = Path(os.path.normpath(start))
        if start.is_file():
            yield start
            continue
        if not start.is_dir():
            _not_gateable(given, start)
        # A folder named explicitly is scanned even when an exclude pattern covers it.
        excluded = config.is_excluded if not config.is_excluded(rel_posix(start, config.root)) else _never
        # Symlinked folders are followed, each real folder once: a link back up (a cycle) or a second
        # link to a folder already walked adds nothing.
        walked = {os.path.realpath(start)}
        for folder, dirs, files in os.walk(start, onerror=_unlistable, followlinks=True):
            here = Path(folder)
            kept = []
            for d in sorted(dirs):
                if d in SILENT_HIDDEN or _environment(here / d):
                    continue
                rel = rel_posix(here / d, config.root)
                if excluded(rel):
                    continue  # the user's own exclude: they know, nothing to report
                if d in defaults or (d.startswith(".") and config.default_excludes):
                    # __pycache__ holds compiled files only: not worth a listing
                    if skipped is not None and d != "__pycache__" and (count := _count_python(here / d)):
                        skipped[rel] = count
                    continue
                real = os.path.realpath(here / d)
                if real in walked:
                    continue
                walked.add(real)
                kept.append(d)
            dirs[:] = kept
            for name in sorted(files):
                if name.endswith(".py") and not excluded(rel_posix(here / name, config.root)):
                    yield here / name


def _not_gateable(given: str | Path, start: Path) -> None:
    """Raise the error for a path named explicitly that is neither a regular file nor a folder, saying what it is."""
    try:
        kind = non_regular(os.stat(start).st_mode) or "a path that changed while it was looked at"
    except FileNotFoundError:
        if os.path.islink(start):
            raise MissingFileError(
                f"{given}: is a broken symbolic link (to {os.readlink(start)}); fix the link or the path"
            ) from None
        raise MissingFileError(
            f"{given}: no such file or folder to gate; fix the path or [tool.cleanroom.gates] paths"
        ) from None
    except OSError as exc:
        raise InputError(f"{given}: cannot be looked at ({exc.strerror or exc}); fix its permissions") from exc
    raise InputError(
        f"{given}: is {kind}, not a regular file or a folder; the gates read only regular .py files "
        "(a FIFO would block the run, a device never end): name the files or folders to gate"
    )


def _environment(folder: Path) -> bool:
    """A virtualenv (``pyvenv.cfg``) or a conda environment (``conda-meta/``): installed code, never the repository's."""
    return (folder / "pyvenv.cfg").exists() or (folder / "conda-meta").is_dir()


def _count_python(folder: Path) -> int:
    """The ``.py`` files under a skipped folder, for the report (links not followed; unlistable parts not counted)."""
    return sum(name.endswith(".py") for _, _, files in os.walk(folder) for name in files)


def _unlistable(exc: OSError) -> None:
    raise InputError(
        f"{exc.filename}: cannot list the folder to gate it ({exc.strerror or exc}); "
        "fix its permissions or add it to [tool.cleanroom.gates] exclude"
    ) from exc

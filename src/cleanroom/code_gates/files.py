"""Which files the gates see: the walk over the paths given, the user's excludes and the default ones.

Files and folders named explicitly are always checked. Hidden folders other than version control,
environments and caches are skipped by default out loud, as ``build/`` is: a ``.github/scripts/`` can
load a model as well as ``scripts/`` can. A folder the walk cannot list is an error (it
would pass code unseen); a folder skipped by default is listed in the report with its ``.py`` files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

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
            raise MissingFileError(
                f"{given}: no such file or folder to gate; fix the path or [tool.cleanroom.gates] paths"
            )
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

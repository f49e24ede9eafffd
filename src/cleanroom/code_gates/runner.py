"""Run the gates over files and folders and collect one report.

Per file (unless the content-hash cache already has its findings): compile the bytes (so PEP 263
coding lines are honoured; ``return`` outside a function and friends are compiler errors, not parser
errors), build and check the AST only when the code mentions a trigger name, then apply waivers,
the loader exemption and the ``disable`` list. A file that does not compile is a CR901 violation,
never a crash. Single process on purpose: the whole budget is ~1 ms per file.
"""

from __future__ import annotations

import ast
import gc
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cleanroom.code_gates.cache import RawFinding, ResultCache
from cleanroom.code_gates.checker import check_tree
from cleanroom.code_gates.config import GateConfig
from cleanroom.code_gates.files import iter_python_files, read_regular, rel_posix, skipped_note
from cleanroom.code_gates.forwarding import ForwarderTable, Reach
from cleanroom.code_gates.prefilter import needs_ast
from cleanroom.code_gates.report import GateReport, PathIgnoreTally
from cleanroom.code_gates.report import display as _display
from cleanroom.code_gates.rules import DEFAULT_RULES, RULES_BY_ID
from cleanroom.code_gates.violation import Violation
from cleanroom.code_gates.vocabulary import HELPERS
from cleanroom.code_gates.waivers import Waiver, find_waivers
from cleanroom.errors import InputError, one_line

OFF_BY_DEFAULT = frozenset(RULES_BY_ID) - DEFAULT_RULES


@dataclass(frozen=True)
class FileResult:
    """One file's violations (after waivers) and the waivers that suppressed something or nothing."""

    violations: tuple[Violation, ...]
    used_waivers: tuple[Waiver, ...]
    unused_waivers: tuple[Waiver, ...]
    suppressed: tuple[Violation, ...] = ()  # findings of ``count_disabled`` rules, not reported


_PYTHON = f"Python {sys.version_info.major}.{sys.version_info.minor}"


def raw_findings(
    source: str | bytes, path: str, helpers: dict[str, str] | None = None, reach: Reach | None = None
) -> list[RawFinding]:
    """The findings of every rule in one module, before waivers, loader exemption and ``disable``.

    *reach*: the repository's forwarding loaders the module can call (cross-file facts).

    A module that does not compile gives the single finding ``(line, col, "CR901", what, line)``.
    """
    try:
        # Compiling stays in C; the Python AST is only built when the code objects mention a
        # trigger name (prefilter.needs_ast): building and walking it is the other half of the cost.
        # The compiler's warnings about the user's code (``x is 1``, ``"\d"``) are not the gates'
        # findings and would be printed between them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, path, "exec", dont_inherit=True, optimize=0)
            extra = frozenset(name.rsplit(".", 1)[-1] for name in helpers) if helpers else frozenset()
            tree = ast.parse(source, filename=path) if needs_ast(code, source, extra) else None
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None) or 1
        col = getattr(exc, "offset", None) or 1
        what = getattr(exc, "msg", None) or one_line(exc)
        return [
            (
                line,
                col,
                "CR901",
                f"does not compile under {_PYTHON}: {what}; {RULES_BY_ID['CR901'].fix}",
                line,
                "",
            )
        ]
    if tree is None:
        return []
    try:
        found = check_tree(tree, path, helpers, reach)
    except RecursionError:  # compiled, but nested deeper than a rule's walk can recurse: unchecked, said so
        return [(1, 1, "CR901", f"nests expressions too deeply to check under {_PYTHON} (recursion limit): none of "
                 "its rules ran; split the deepest expression", 1, "")]
    return [(v.line, v.col, v.rule, v.message, v.last_line, v.callee) for v in found]


def check_source(
    source: str | bytes,
    path: str,
    *,
    loader: bool = False,
    disable: Iterable[str] | None = None,
    cache: ResultCache | None = None,
    helpers: dict[str, str] | None = None,
    loader_callee: Callable[[str], bool] | None = None,
    loader_hint: str = "",
    reach: Reach | None = None,
    count_disabled: Iterable[str] = (),
) -> FileResult:
    """Check one module's source. *loader*: the file is a loader module (CR1xx–CR4xx do not apply).

    *disable*: rules not reported (default: only the off-by-default ones). *cache*: look the raw
    findings up by content hash first (see :mod:`cleanroom.code_gates.cache`). *helpers*: the helper
    table (default :data:`~cleanroom.code_gates.vocabulary.HELPERS`). *loader_callee*: true for a callee
    imported from the user's loader (quantization keywords passed to it are the intended pattern).
    *loader_hint*: the fix text for migration rules, naming the user's loader modules. *reach*: the
    repository's forwarding loaders this module can call; they are part of the cache key, so a wrapper
    added, removed or moved elsewhere never leaves a stale finding (or a stale silence) here.
    *count_disabled*: rules of *disable* whose findings are returned in ``FileResult.suppressed`` rather
    than dropped unseen (the per-path ignores: the report counts what they kept out).
    """
    disabled = OFF_BY_DEFAULT if disable is None else frozenset(disable)
    raw = _cached_findings(source, path, cache, helpers, reach)
    if raw and raw[0][2] == "CR901":
        line, col, rule, message = raw[0][:4]
        found = [Violation(path, line, col, rule, message)]
        waivers: list[Waiver] = []
        bad: list[Violation] = []
    else:
        found = [
            Violation(path, line, col, rule, _hinted(message, rule, loader_hint), end)
            for line, col, rule, message, end, callee in raw
            if not (loader and RULES_BY_ID[rule].loader_exempt)
            and not (callee == "<loader-decides>" and loader)
            and not (callee and loader_callee is not None and loader_callee(callee))
        ]
        text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
        waivers, bad = find_waivers(text, path)
    counted = frozenset(count_disabled) & disabled
    suppressed = tuple(v for v in found + bad if v.rule in counted)
    return _waived([v for v in found if v.rule not in disabled], [v for v in bad if v.rule not in disabled], waivers,
                   suppressed)


def _waived(found: list[Violation], bad: list[Violation], waivers: list[Waiver], suppressed: tuple[Violation, ...]) -> FileResult:
    """The file's result once *waivers* took what they cover out of *found* (*bad*: the malformed waivers' CR902)."""
    if not found or not waivers:
        return FileResult(tuple(sorted(found + bad, key=_order)), (), tuple(waivers), suppressed)
    kept: list[Violation] = []
    used: set[Waiver] = set()
    for v in found:
        waiver = next(
            (w for w in waivers if v.line <= w.covers_line <= v.last_line and v.rule in w.rules), None
        )
        if waiver is None:
            kept.append(v)
        else:
            used.add(waiver)
    return FileResult(
        tuple(sorted(kept + bad, key=_order)),
        tuple(w for w in waivers if w in used),
        tuple(w for w in waivers if w not in used),
        suppressed,
    )


def _cached_findings(
    source: str | bytes, path: str, cache: ResultCache | None, helpers: dict[str, str] | None, reach: Reach | None
) -> list[RawFinding]:
    """The raw findings from *cache* when it holds them, else computed (and stored). The key is the bytes
    plus what else the findings read (*reach*'s wrappers), so a changed wrapper elsewhere is a miss."""
    if cache is None:
        return raw_findings(source, path, helpers, reach)
    data = source if isinstance(source, bytes) else source.encode("utf-8", "surrogatepass")
    key = cache.key(data + (b"\0" + reach.key() if reach is not None else b""))
    raw = cache.get(key)
    if raw is None:
        raw = raw_findings(source, path, helpers, reach)
        cache.put(key, raw)
    return raw


def _hinted(message: str, rule: str, hint: str) -> str:
    """The message with the fix pointing at the user's own loader where one is configured."""
    fix = RULES_BY_ID[rule].fix
    if hint and RULES_BY_ID[rule].loader_exempt and message.endswith(fix):
        return message[: -len(fix)] + hint
    return message


def loader_hint(config: GateConfig) -> str:
    """The fix text of the migration rules for a repository with its own loader modules."""
    if not config.loader_modules:
        return ""
    return f"do this in your loader ({', '.join(config.loader_modules)}) and call it from here"


def _order(v: Violation) -> tuple[str, int, int, str]:
    return (v.path, v.line, v.col, v.rule)


def _why_unchecked(file: Path, problem: OSError | str) -> str:
    """Why a file the walk found was not checked: it could not be read, or *problem* names what it is instead
    of a regular file (a FIFO, a device: never opened)."""
    if isinstance(problem, str):
        return f"is {problem}, not a regular file (not opened)"
    if file.is_symlink() and not file.exists():
        return f"is a broken symbolic link (to {os.readlink(file)})"
    return f"cannot be read ({problem.strerror or type(problem).__name__})"


def _unreadable(path: str, why: str) -> Violation:
    """The CR901 finding for a file that was not checked: a file the gates cannot see does not pass."""
    return Violation(
        path,
        1,
        1,
        "CR901",
        f"{why}; every file the gates cover must be a readable regular file: fix or remove it, "
        "or add it to [tool.cleanroom.gates] exclude",
    )


def _read_all(
    files: Iterable[Path], config: GateConfig, seen: set[Path]
) -> list[tuple[Path, str, bytes | OSError | str]]:
    """(file, root-relative path, its bytes, the error reading them, or what it is when not a regular
    file, which is never opened) for each file not in *seen* (added to it)."""
    read: list[tuple[Path, str, bytes | OSError | str]] = []
    for file in files:
        if file in seen:
            continue
        seen.add(file)
        try:
            read.append((file, rel_posix(file, config.root), read_regular(file)))
        except OSError as exc:
            read.append((file, rel_posix(file, config.root), exc))
    return read


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for a run: ASTs are trees that reference counting frees, so the
    collector only re-walks them while they are alive (about 4% of a cold run, measured)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_gates(
    config: GateConfig, paths: Iterable[str | Path] | None = None, *, use_cache: bool = True
) -> GateReport:
    """Run every enabled rule over *paths* (default: the configured ``paths``, relative to the root).

    *use_cache*: reuse raw findings of unchanged files from the user cache directory and store
    this run's (see :mod:`cleanroom.code_gates.cache`); False checks every file from scratch.
    """
    helpers = {**HELPERS, **dict(config.helpers)}
    extra = repr(sorted(config.helpers)) if config.helpers else ""  # the built-in ones are in the source
    cache = ResultCache(extra_salt=extra) if use_cache else None
    targets: list[str | Path] = list(paths) if paths is not None else [config.root / p for p in config.paths]
    hint = loader_hint(config)
    callee = config.is_loader_callee if config.loader_modules else None
    violations: list[Violation] = []
    used: list[Waiver] = []
    unused: list[Waiver] = []
    unchecked: list[tuple[str, str]] = []
    tally = PathIgnoreTally(config)
    seen: set[Path] = set()
    skipped: dict[str, int] = {}
    with _cyclic_gc_paused():
        # Read every file first: the forwarding loaders of the whole run are known before any call is judged.
        read = _read_all(iter_python_files(targets, config, skipped), config, seen)
        table = ForwarderTable(((f, r, s) for f, r, s in read if isinstance(s, bytes)), helpers, cache)
        for file, rel, source in read:
            covering = config.path_ignores_for(rel)  # each per-path pattern matched against the file once
            off = config.off_for(rel, covering)
            if not isinstance(source, bytes):
                unchecked.append((_display(file), _why_unchecked(file, source)))
                if "CR901" not in off:
                    violations.append(_unreadable(*unchecked[-1]))
                continue
            result = check_source(
                source,
                _display(file),
                loader=config.is_loader(rel),
                disable=off,
                cache=cache,
                helpers=helpers,
                loader_callee=callee,
                loader_hint=hint,
                reach=table.reach(file, source),
                count_disabled=off - config.off,
            )
            violations.extend(result.violations)
            used.extend(result.used_waivers)
            unused.extend(result.unused_waivers)
            tally.add_file(rel, [v.rule for v in result.suppressed], covering)
    if cache is not None:
        cache.save()
    return _report(config, targets, (violations, used, unused), seen, unchecked, tally, tuple(sorted(skipped.items())))


def _report(
    config: GateConfig,
    targets: list[str | Path],
    found: tuple[list[Violation], list[Waiver], list[Waiver]],
    seen: set[Path],
    unchecked: list[tuple[str, str]],
    tally: PathIgnoreTally,
    left_out: tuple[tuple[str, int], ...],
) -> GateReport:
    """The run's report; an :class:`InputError` when it gated nothing (no file found, or none checked and
    nothing said about it): a gate over nothing passes nothing."""
    violations, used, unused = found
    if not seen or (len(unchecked) == len(seen) and not violations):
        shown = ", ".join(str(t) for t in targets)
        what = "no Python files to gate (all excluded, hidden or not .py" if not seen else (
            f"no Python file could be checked ({'; '.join(f'{p}: {why}' for p, why in unchecked[:3])}"
        )
        raise InputError(
            f"{shown}: {what}"
            + (f"; {skipped_note(left_out)}" if left_out else "")
            + "); a gate over nothing passes nothing: fix the paths or [tool.cleanroom.gates] exclude"
        )
    path_ignores, everywhere = tally.result()
    return GateReport(
        tuple(violations), tuple(used), tuple(unused), len(seen) - len(unchecked), config, skipped=left_out,
        not_checked=tuple(unchecked), path_ignores=path_ignores, ignored_everywhere=everywhere,
    )

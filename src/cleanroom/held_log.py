"""transformers' console log during a model load, held until the load ends: shown when it succeeds, kept off
the console when cleanroom refuses the load.

transformers logs while it loads: config warnings, and a multi-line LOAD REPORT table of missing, unexpected
and mismatched weights, some of them just before it raises ("For details look at the above report!"). When
cleanroom then refuses the load, the user's terminal showed that table above cleanroom's one-line error,
which already says what is wrong, where, and the fix. While :func:`held_console` is active, transformers'
own console handler is switched off (``transformers.utils.logging.disable_default_handler``, its public
switch) and each record is held instead; on leaving:

- the load succeeded, or failed with an exception cleanroom did not raise: the held records go to the console,
  in order (a successful load's report says which weights were newly initialised: users rely on it);
- cleanroom refused the load (a :class:`~cleanroom.errors.CleanroomError`): the console shows only the
  refusal; the held text rides on the exception as a note, which ``--debug``'s traceback prints.

Only the console is held: any other handler on the ``transformers`` logger (the run log, ``run.log``) keeps
receiving each record as it is logged. Holds nest: only the outermost one switches the console off and
releases; an inner one is for reading what was said (:meth:`Held.mismatches`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

from cleanroom.errors import CleanroomError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MISMATCH = re.compile(r"^\s*([^|]*?)\s*\|.*MISMATCH.*ckpt:\s*(?:torch\.Size\()?(\[[^\]]*\])\)?\s*vs\s*model:\s*"
                       r"(?:torch\.Size\()?(\[[^\]]*\])")


class Held(logging.Handler):
    """The records logged while a hold was active, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Every held message, ANSI colours removed."""
        return "\n".join(_ANSI.sub("", record.getMessage()) for record in self.records)

    def mismatches(self) -> list[str]:
        """The LOAD REPORT's MISMATCH rows as ``key: checkpoint [a, b], model [c, d]`` (empty when none)."""
        return [f"{m[1]}: checkpoint {m[2]}, model {m[3]}" for line in self.text().splitlines()
                if (m := _MISMATCH.match(line))]


@contextlib.contextmanager
def held_console() -> Iterator[Held]:
    """Hold transformers' console log for the block (module docstring); without transformers, hold nothing."""
    try:
        from transformers.utils import logging as hf_logging  # heavy optional: transformers
    except ImportError:
        yield Held()
        return
    root = logging.getLogger("transformers")
    before = list(root.handlers)
    hf_logging.disable_default_handler()
    console = [h for h in before if h not in root.handlers]  # empty when an outer hold already switched it off
    held = Held()
    root.addHandler(held)
    release = True
    try:
        yield held
    except CleanroomError as exc:
        release = False
        if held.records and console:
            exc.add_note(f"transformers logged while loading (held off the console):\n{held.text()}")
        raise
    finally:
        root.removeHandler(held)
        if console:
            hf_logging.enable_default_handler()
            for record in held.records if release else ():
                for handler in console:
                    if record.levelno >= handler.level:
                        handler.handle(record)


__all__ = ["Held", "held_console"]

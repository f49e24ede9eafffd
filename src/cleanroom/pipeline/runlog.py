"""The run log on disk: ``runs/<run_id>/run.log``, appended by every attempt of the run.

It holds every line the pipeline prints (with its time), the library warnings that matter
(transformers, peft, trl, datasets, accelerate, and Python ``warnings``) and the trainer's per-step
``{'loss': ...}`` dicts, each line stamped with the date and time in UTC. stdout keeps the pipeline's
own lines for the person watching; with ``--no-progress`` nothing else is drawn there, since the
model-loading, dataset and trainer progress bars are switched off while the run holds the log.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

#: Loggers whose warnings go into the run log (``py.warnings`` is where ``logging.captureWarnings`` sends them).
LIBRARY_LOGGERS = ("transformers", "peft", "trl", "datasets", "accelerate", "py.warnings")


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class StampedLines:
    """A text stream that writes each complete line to *sink* prefixed with the UTC time (for ``redirect_stdout``)."""

    def __init__(self, sink: TextIO, source: str) -> None:
        self.sink, self.source, self._partial = sink, source, ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            if line.strip():
                self.sink.write(f"{stamp()} {self.source}: {line}\n")
        return len(text)

    def flush(self) -> None:
        if self._partial.strip():
            self.write("\n")
        self.sink.flush()


@contextlib.contextmanager
def open_run_log(path: Path, *, progress: bool) -> Iterator[TextIO]:
    """Open the run log for appending and route library warnings into it until the block ends.

    With ``progress=False`` the progress bars of transformers (model loading), huggingface_hub and
    datasets are disabled for the same span, and restored afterwards.
    """
    fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in the finally below
    handler = logging.StreamHandler(fh)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ"))
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    for lg in loggers:
        lg.addHandler(handler)
    logging.captureWarnings(True)
    restore = [] if progress else disable_progress_bars()
    try:
        yield fh
    finally:
        for undo in restore:
            undo()
        logging.captureWarnings(False)
        for lg in loggers:
            lg.removeHandler(handler)
        fh.close()


class _UTCFormatter(logging.Formatter):
    @staticmethod
    def converter(seconds: float | None = None) -> time.struct_time:
        return time.gmtime(seconds)


def disable_progress_bars() -> list[Any]:
    """Switch the libraries' own progress bars off; return the calls that switch them back on."""
    restore: list[Any] = []
    with contextlib.suppress(ImportError):  # transformers is an optional extra (train)
        from transformers.utils import logging as hf_logging  # heavy optional: transformers

        if hf_logging.is_progress_bar_enabled():
            hf_logging.disable_progress_bar()
            restore.append(hf_logging.enable_progress_bar)
    with contextlib.suppress(ImportError):
        import huggingface_hub.utils as hub_utils  # heavy optional: huggingface_hub

        if not hub_utils.are_progress_bars_disabled():
            hub_utils.disable_progress_bars()
            restore.append(hub_utils.enable_progress_bars)
    with contextlib.suppress(ImportError):  # datasets is an optional extra (train)
        import datasets  # heavy optional: datasets

        if datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            restore.append(datasets.enable_progress_bars)
    return restore

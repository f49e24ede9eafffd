"""One exception hierarchy for cleanroom.

Every error subclasses :class:`CleanroomError` *and* the matching builtin, so callers can catch
either (``except ValueError`` keeps working). ``exit_code`` is what the command line returns:
1 when a check found a problem, 2 for usage or input errors. Messages name the thing, the place
and the fix.
"""

from __future__ import annotations

import re


class CleanroomError(Exception):
    """Base class of every error cleanroom raises on purpose."""

    exit_code: int = 1


class ConfigError(CleanroomError, ValueError):
    """A configuration, argument or model path is invalid (names the field or path and the fix)."""

    exit_code = 2


class InputError(CleanroomError, ValueError):
    """An input file is malformed or inconsistent (names the file, the line and the fix)."""

    exit_code = 2


class MissingFileError(InputError, FileNotFoundError):
    """A file or directory the user pointed at does not exist."""


class OutputPathError(ConfigError, OSError):
    """An output path cannot take a file: it is a device, a FIFO, a socket, a directory or a symlink loop, or
    its directory is a file or not writable (found before anything is written). Also an OSError, the error
    the write itself would have met, so a caller that skips an unwritable cache keeps skipping it."""


class DependencyError(CleanroomError, ImportError):
    """An optional dependency is missing; the message carries the install command."""

    exit_code = 2


#: The packages of the ``train`` extra: a core install (``pip install cleanroom``) has none of them.
TRAIN_PACKAGES = frozenset({"torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets",
                            "safetensors", "tokenizers", "tiktoken", "gguf", "sentencepiece"})


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, each run of white space folded to one space (the command line
    prints an error as one line; transformers' messages span several), or its class name where the message
    is empty (``KeyError()``, a bare ``assert``): the place that shows it is never left blank."""
    return " ".join(str(exc).split()) or type(exc).__name__


def missing_train_extra(exc: ImportError) -> DependencyError | None:
    """The install hint for an import of a ``train`` package that failed, or None for any other import."""
    name = (getattr(exc, "name", None) or "").split(".", 1)[0]
    if name not in TRAIN_PACKAGES:
        return None
    return DependencyError(f"this command needs {name}, which is not installed (the core install has no torch "
                           "stack): pip install 'cleanroom[train]' (install torch first on a CPU machine)")


def missing_backend(exc: ImportError, subject: str = "class") -> DependencyError | None:
    """The install hint for transformers refusing a class whose backend package is not installed, or None for
    any other ImportError. transformers says it as ``"X requires the Y library but it was not found in your
    environment..."`` (``requires_backends``); the hint names the class, the package(s) to install and the
    pip command: "``{subject} X needs Y, which is not installed: pip install Y``" (*subject* says where, e.g.
    ``"/models/m: tokenizer class"``)."""
    text = one_line(exc)
    match = re.match(r"(\w+) requires the (.+?) librar", text)
    if match is None:
        return None
    packages = _backend_packages(match[1], text) or [match[2].split()[0].lower()]
    return DependencyError(f"{subject} {match[1]} needs {', '.join(packages)}, which "
                           f"{'is' if len(packages) == 1 else 'are'} not installed: pip install {' '.join(packages)}")


def _backend_packages(name: str, text: str) -> list[str]:
    """The pip names of the backends whose message for class *name* is in *text* (transformers' own table:
    its pip command, else the backend's name), in its order; empty when transformers cannot be asked."""
    try:
        # heavy optional: transformers (already imported by whatever raised the ImportError)
        from transformers.utils.import_utils import BACKENDS_MAPPING
    except ImportError:
        return []
    packages = []
    try:
        for key, (_, template) in BACKENDS_MAPPING.items():
            message = " ".join(template.replace("{0}", name).split())
            if message and message in text:
                pip = re.search(r"pip install (?:-U )?([A-Za-z][\w.-]*)", message)  # "pip install -U scikit-learn"
                packages.append(pip[1] if pip else key)
    except (TypeError, ValueError, AttributeError):  # the table changed shape: the backend's own name instead
        return []
    return packages


class ContaminationError(CleanroomError, ValueError):
    """A chat template, control token or instruct model reached a base-model path."""


class InstructModelError(ContaminationError):
    """An instruct or chat model was given where a base model is needed: the input is wrong (exit 2, like
    ``cleanroom run``'s preflight refusal). ``inspect-model``, whose job is to tell, reports it as its
    verdict instead (NOT CLEAN, exit 1).

    The message is the refusal, then how to accept the model anyway, which depends on where it was asked for
    (the loader's ``allow_instruct=``, ``--allow-instruct REASON``, the config's ``model.allow_instruct``): the
    loader cannot know its caller, so a caller that offers another way gives the same refusal with its own
    fix through :meth:`with_fix`. ``probe`` is the base-or-instruct result that decided it, when there is one."""

    exit_code = 2

    def __init__(self, refusal: str, fix: str | None = None, probe: object = None) -> None:
        super().__init__(refusal if fix is None else f"{refusal} — {fix}")
        self.refusal, self.fix, self.probe = refusal, fix, probe

    def with_fix(self, fix: str) -> InstructModelError:
        """This refusal with *fix* as the way to accept the model anyway (the caller's option, not the loader's)."""
        return InstructModelError(self.refusal, fix, self.probe)


class ProvenanceError(CleanroomError, ValueError):
    """A record, file, manifest or attestation does not match its recorded digest or parents."""


class GateError(CleanroomError, RuntimeError):
    """A code gate found a violation, or could not be configured."""


class StatisticsError(CleanroomError, ValueError):
    """A statistic was asked for on input it cannot decide (too few examples, mismatched keys)."""

    exit_code = 2


class IncomparableError(CleanroomError, ValueError):
    """Results were produced under different conditions (prompts, scorer, generation settings), so
    comparing them would credit the model with a difference it did not make."""


class BudgetExceededError(CleanroomError, RuntimeError):
    """The run reached ``max_cost_usd`` or ``max_hours``; it stopped at a checkpoint."""


class PatchedProcessError(ConfigError):
    """A stage cannot run in this process because a library patched it for the whole process (Unsloth patches
    transformers on import); the stages before it are saved, and the run continues in a fresh process with
    ``--resume`` (``cleanroom run`` does that itself, once). ``stage`` names the stage that refused."""

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


__all__ = [
    "BudgetExceededError",
    "CleanroomError",
    "ConfigError",
    "ContaminationError",
    "DependencyError",
    "GateError",
    "IncomparableError",
    "InputError",
    "InstructModelError",
    "MissingFileError",
    "OutputPathError",
    "PatchedProcessError",
    "ProvenanceError",
    "StatisticsError",
    "TRAIN_PACKAGES",
    "missing_backend",
    "missing_train_extra",
    "one_line",
]

"""The one YAML reader of the package: PyYAML's safe loader, with every defect a :class:`yaml.YAMLError`.

PyYAML's safe loader lets some defects out as a bare ValueError that names neither the file nor the line: an
integer of more digits than Python converts (``sys.get_int_max_str_digits()``, 4300 by default), whose message
tells the user to change the interpreter; a date that does not exist (``2001-02-30``); ``!!float abc``. :class:`SafeLoader` answers it as a YAML error at its
line and column, so every caller's ``except yaml.YAMLError`` (a profile, a ``key=value`` override, a run's
``config.resolved.yaml`` under ``cleanroom verify``) words it like any other YAML defect, with the number's
digit count and the fix (:func:`cleanroom.jsonl.too_long_integer`, the JSON reader's words for the same defect).

:mod:`cleanroom.config` builds its duplicate-key refusal on :class:`SafeLoader`; everything else that reads
YAML calls :func:`safe_load`.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError

from cleanroom.jsonl import too_long_integer

_INT_TAG = "tag:yaml.org,2002:int"


class SafeLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` with an integer too long for :func:`int` a :class:`ConstructorError` at its mark."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)  # type: ignore[no-untyped-call,no-any-return]
        except ValueError:  # too many digits, or a scalar tagged ``!!int`` that is no integer
            value = str(node.value)
            problem = (too_long_integer(value) if value.lstrip("+-").replace("_", "").replace(":", "").isdigit() else
                       f"{value[:40]!r} is tagged !!int but is no integer; write an integer or remove the tag")
            raise ConstructorError(None, None, problem, node.start_mark) from None

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Any other value its constructor refuses with a bare ValueError (a date that does not exist,
        ``2001-02-30``; ``!!float abc``) is a :class:`ConstructorError` at its line and column too."""
        try:
            return super().construct_object(node, deep=deep)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ConstructorError(None, None, f"{str(node.value)[:40]!r}: {exc}", node.start_mark) from None


# PyYAML dispatches on the function registered for the tag, not on the method: register the override.
SafeLoader.add_constructor(_INT_TAG, SafeLoader.construct_yaml_int)


def safe_load(text: str | bytes) -> Any:
    """:func:`yaml.safe_load` through :class:`SafeLoader`: the document's value, or a :class:`yaml.YAMLError`."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a SafeLoader subclass


__all__ = ["SafeLoader", "safe_load"]

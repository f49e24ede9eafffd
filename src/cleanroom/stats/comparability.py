"""Whether verdict files may be compared: everything they were produced under, except the model, is equal.

A paired comparison attributes the difference between two files to the one thing that differs. Each
verdict record carries ``conditions``: what it was produced under (the prompt's digest, the prompt
rendering, the scorer's version, the generation settings — every key recorded, whatever the engine
adds — and the model). Two files are comparable when, for every paired key, every condition except
``model.*`` has the same value in each file. A condition that was not recorded (a file without
``conditions``, a value of null) is not known to be equal, so it is a difference too: fail closed.

A difference is accepted only by name (``allow``), and the caller must give the reason; the fields
held equal and the accepted differences travel with the result, so a report says what was compared.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

#: The conditions a comparison exists to vary.
VARIED = ("model",)
NOT_RECORDED = "not recorded"


class Difference(NamedTuple):
    """One condition that is not equal across the files: its dotted name and where it differs."""

    field: str
    detail: str


def flatten(conditions: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"generation": {"temperature": 0}}`` → ``{"generation.temperature": 0}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for key, value in conditions.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def _show(value: Any) -> str:
    return NOT_RECORDED if value is None else json.dumps(value, sort_keys=True, default=str)[:80]


def find_differences(
    conditions: Sequence[Mapping[Hashable, Mapping[str, Any] | None]], labels: Sequence[str]
) -> tuple[list[Difference], list[str]]:
    """(differences, fields held equal) over the paired keys of each file (``conditions[i][key]``).

    Conditions under :data:`VARIED` are skipped. A field is held equal only when every file recorded
    the same non-null value for it at every key.
    """
    missing = [labels[i] for i, per_key in enumerate(conditions) if any(c is None for c in per_key.values())]
    diffs = []
    if missing:
        diffs.append(Difference("conditions", f"{NOT_RECORDED} in {', '.join(missing)} (score it with "
                                              "`cleanroom eval score` or `eval run`, which record them)"))
    differing: dict[str, list[tuple[Hashable, list[Any]]]] = {}
    seen: set[str] = set()
    for key in conditions[0]:
        flats = [flatten(per_key[key] or {}) for per_key in conditions]
        for name in sorted(set().union(*flats)):
            if name.split(".", 1)[0] in VARIED:
                continue
            seen.add(name)
            values = [flat.get(name) for flat in flats]
            if any(v is None for v in values) or any(v != values[0] for v in values[1:]):
                differing.setdefault(name, []).append((key, values))
    for name, where in sorted(differing.items()):
        key, values = where[0]
        shown = " vs ".join(f"{label}={_show(v)}" for label, v in zip(labels, values, strict=True))
        diffs.append(Difference(name, f"{len(where)} key(s), e.g. key {key!r}: {shown}"))
    return diffs, sorted(seen - set(differing))


def split_allowed(diffs: Sequence[Difference], allow: Sequence[str]) -> tuple[list[Difference], list[Difference]]:
    """(refused, accepted): a difference is accepted when its field or a dotted parent of it is allowed."""
    def allowed(field: str) -> bool:
        return any(field == a or field.startswith(a + ".") for a in allow)

    return [d for d in diffs if not allowed(d.field)], [d for d in diffs if allowed(d.field)]


__all__ = ["NOT_RECORDED", "VARIED", "Difference", "find_differences", "flatten", "split_allowed"]

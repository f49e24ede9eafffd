"""Whether verdict files may be compared: everything they were produced under, except the model, is equal.

A paired comparison attributes the difference between two files to the one thing that differs. Each
verdict record carries ``conditions``: what it was produced under (the prompt's digest, the prompt
rendering, the scorer's version, the generation settings — every key recorded, whatever the engine
adds — and the model). Two files are comparable when, for every paired key, every condition except
``model.*`` has the same value in each file. A condition that one file recorded and another did not
(a file without ``conditions``, a value of null) is not known to be equal, so it is a difference too:
fail closed.

A condition that *no* file recorded at a key (``eval score`` on responses that carry no generation or
rendering settings: ``not recorded`` on both sides) is neither a difference nor held equal: nothing
says the files differ in it, and nothing says they match. It is reported as not compared, with the
number of keys, and never listed as held equal. The exception is :data:`REQUIRED`: the prompt's digest
and the scorer's version are recorded by every cleanroom scorer, so a file without them was not made
by one, and their absence stays a refused difference.

A difference is accepted only by name (``allow``), and the caller must give the reason; the fields
held equal, the fields not compared and the accepted differences travel with the result, so a report
says what was compared.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

#: The conditions a comparison exists to vary.
VARIED = ("model",)
#: Conditions every cleanroom scorer records: missing in every file is still a difference, never "not compared".
REQUIRED = ("prompt_sha256", "scorer_sha256")
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


class Comparability(NamedTuple):
    """What :func:`find_differences` found: the differences, the fields held equal at every key, and the
    fields no file recorded (field -> at how many keys), which are not compared."""

    differences: list[Difference]
    held_equal: list[str]
    unrecorded: dict[str, int]

    @property
    def not_compared_by_field(self) -> dict[str, str]:
        """Each unrecorded field's line as the output says it, by field name, in name order:
        ``{field: "field: not recorded in any file at N key(s)"}``."""
        return {name: f"{name}: {NOT_RECORDED} in any file at {n} key(s)" for name, n in sorted(self.unrecorded.items())}

    @property
    def not_compared(self) -> list[str]:
        """The lines of :attr:`not_compared_by_field`, in field-name order."""
        return list(self.not_compared_by_field.values())


def find_differences(
    conditions: Sequence[Mapping[Hashable, Mapping[str, Any] | None]], labels: Sequence[str]
) -> Comparability:
    """Compare the conditions of each file over the paired keys (``conditions[i][key]``).

    Conditions under :data:`VARIED` are skipped. A field is held equal only when every file recorded
    the same non-null value for it at every key; one that no file recorded at some key (and that has
    no recorded sub-field there) is not compared at that key, unless it is :data:`REQUIRED`.
    """
    missing = [labels[i] for i, per_key in enumerate(conditions) if any(c is None for c in per_key.values())]
    diffs = []
    if missing:
        diffs.append(Difference("conditions", f"{NOT_RECORDED} in {', '.join(missing)} (score it with "
                                              "`cleanroom eval score` or `eval run`, which record them)"))
    differing: dict[str, list[tuple[Hashable, list[Any]]]] = {}
    unrecorded: dict[str, int] = {}
    seen: set[str] = set()
    for key in conditions[0]:
        flats = [flatten(per_key[key] or {}) for per_key in conditions]
        names = set().union(*flats) | set(REQUIRED)  # a required field left out is refused, not skipped
        for name in sorted(names):
            if name.split(".", 1)[0] in VARIED:
                continue
            values = [flat.get(name) for flat in flats]
            if all(v is None for v in values) and name not in REQUIRED:
                # a recorded sub-field (generation.temperature under generation=null) is compared on its own
                if not any(other.startswith(name + ".") for other in names):
                    unrecorded[name] = unrecorded.get(name, 0) + 1
                continue
            seen.add(name)
            if any(v is None for v in values) or any(v != values[0] for v in values[1:]):
                differing.setdefault(name, []).append((key, values))
    for name, where in sorted(differing.items()):
        key, values = where[0]
        shown = " vs ".join(f"{label}={_show(v)}" for label, v in zip(labels, values, strict=True))
        diffs.append(Difference(name, f"{len(where)} key(s), e.g. key {key!r}: {shown}"))
    return Comparability(diffs, sorted(seen - set(differing) - set(unrecorded)), unrecorded)


def split_allowed(diffs: Sequence[Difference], allow: Sequence[str]) -> tuple[list[Difference], list[Difference]]:
    """(refused, accepted): a difference is accepted when its field or a dotted parent of it is allowed."""
    def allowed(field: str) -> bool:
        return any(field == a or field.startswith(a + ".") for a in allow)

    return [d for d in diffs if not allowed(d.field)], [d for d in diffs if allowed(d.field)]


__all__ = ["NOT_RECORDED", "REQUIRED", "VARIED", "Comparability", "Difference", "find_differences", "flatten",
           "split_allowed"]

"""The one way a spec is declared and validated: a frozen pydantic model whose bad input is a ConfigError.

Every spec (the run config's sections in :mod:`cleanroom.config`, the training specs in
:mod:`cleanroom.training.specs`) subclasses :class:`Spec`: keyword-only, frozen, unknown keys refused,
strict types (``1`` is not ``true``, ``8.0`` is not an integer, a number is not a string). A range is a
field constraint (``Field(ge=1, le=1024)``); a rule across fields raises :class:`Invalid` from a model
validator. Whatever fails, the caller gets one :class:`~cleanroom.errors.ConfigError` with one line, worded
the same way everywhere::

    <where> = <value received> is invalid; allowed: <what is allowed>

``<where>`` is the key path (``sft.train.learning_rate``), except inside a spec that is also built on its
own in Python (``standalone``: LoraSpec, TrainSpec), which names itself (``sft.lora: LoraSpec.r``). The
allowed range is derived from the field's type and constraints, so the rule and its wording cannot drift.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from cleanroom.errors import ConfigError


class Invalid(ValueError):
    """Raised by a validator: *allowed* says what is allowed; *field* and *value* name a field of the model
    (for a rule across fields, raised from a model validator) or are left out (a field validator)."""

    def __init__(self, allowed: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(allowed)
        self.allowed, self.field, self.value = allowed, field, value


@dataclasses.dataclass(frozen=True)
class Allowed:
    """``Annotated`` metadata: how the allowed values are worded when the constraints alone say it badly."""

    text: str


class Spec(BaseModel):
    """Base of every spec: frozen, keyword-only, unknown keys refused, strict types, ConfigError on bad input."""

    # the JSON Schema of a spec says, for each field, what the errors say is allowed (editors show it on hover)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=False,
                              json_schema_extra=lambda schema, cls: _describe_properties(schema, cls))

    #: How errors name this spec when it is validated on its own ("" names fields by their key alone).
    label: ClassVar[str] = ""
    #: True for a spec that is also built on its own in Python: its errors name it even inside a config.
    standalone: ClassVar[bool] = False

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(describe(type(self), exc)) from None

    # pydantic's own mark of "the base __init__" (RootModel sets it too): nested specs and model_validate then
    # validate in pydantic-core, so a nested error keeps its key path instead of arriving as a ConfigError
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}: {type(self).__name__} is frozen; "
                                              "build a new one with cleanroom.spec.replace(spec, ...)")


#: numpy and torch seeds: a non-negative integer below 2**32 (bool is not a seed: specs are strict).
Seed = Annotated[int, Field(ge=0, le=2**32 - 1), Allowed("an integer in [0, 2**32 - 1]")]

SpecT = typing.TypeVar("SpecT", bound=Spec)


def build(cls: type[SpecT], data: Mapping[str, Any]) -> SpecT:
    """Validate *data* (a mapping, e.g. parsed YAML) into *cls*; bad input is a one-line ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{cls.label or cls.__name__} = {data!r} is invalid; allowed: a mapping of "
                          f"{cls.__name__} fields")
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(describe(cls, exc)) from None


def replace(spec: SpecT, **changes: Any) -> SpecT:
    """A copy of *spec* with *changes*, validated like any other construction (``model_copy`` is not)."""
    return type(spec)(**{**{name: getattr(spec, name) for name in type(spec).model_fields}, **changes})


def to_data(value: Any) -> Any:
    """A spec as plain JSON/YAML-able data, fields in declaration order (tuples become lists)."""
    if isinstance(value, BaseModel):
        return {name: to_data(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, tuple | list):
        return [to_data(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_data(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- one error, one line


def describe(cls: type[Spec], exc: ValidationError) -> str:
    """pydantic's errors as one line: unknown keys first (as the reader meets them), then the first bad value."""
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    if not unknown:
        rest = len(errors) - 1
        return _describe_one(cls, errors[0]) + (f" (and {rest} more problem(s))" if rest else "")
    parent = unknown[0]["loc"][:-1]
    keys = [str(e["loc"][-1]) for e in unknown if e["loc"][:-1] == parent]
    where, container, _ = _locate(cls, parent)
    names = sorted(container.model_fields) if container is not None else []
    near = difflib.get_close_matches(keys[0], names, n=1)
    rest = len(errors) - len(keys)
    return (f"{where or 'config'}: unknown key(s) {', '.join(map(repr, keys))}"
            + (f" (did you mean {near[0]!r}?)" if near else "") + f"; allowed: {', '.join(names)}"
            + (f" (and {rest} more problem(s))" if rest else ""))


def _describe_one(cls: type[Spec], error: Any) -> str:
    loc, value = tuple(error["loc"]), error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    where, _owner, info = _locate(cls, loc)
    if isinstance(cause, Invalid):
        if cause.field is not None:  # a rule across fields: the key path, from the spec whose rule it is
            where, value = f"{where}.{cause.field}" if where else cause.field, cause.value
        return f"{where} = {value!r} is invalid; allowed: {cause.allowed}"
    if error["type"] == "missing":
        return (f"{where} is missing; allowed: {allowed(info) if info else 'a value'} "
                "(see the shipped profiles for a complete example)")
    return _invalid(where, value, info, error["msg"])


def _invalid(where: str, value: Any, info: FieldInfo | None, fallback: str) -> str:
    if info is not None and _base(info.annotation) is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # the field holds a float: show the value as the field would
    return f"{where} = {value!r} is invalid; allowed: {allowed(info) if info else fallback}"


def check_value(where: str, value: Any, annotation: Any) -> Any:
    """*value* validated as a spec field of type *annotation* (for a function argument that mirrors one)."""
    try:
        return TypeAdapter(annotation, config=Spec.model_config).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(_invalid(where, value, FieldInfo.from_annotation(annotation),
                                   exc.errors(include_url=False)[0]["msg"])) from None


def _locate(cls: type[Spec], loc: tuple[Any, ...]) -> tuple[str, type[Spec] | None, FieldInfo | None]:
    """How errors name *loc*, the spec its last key leads into (if any), and the field of its last key.

    Key paths from the root (``sft.train``); entering a standalone spec restarts the name with its label
    (``sft.lora: LoraSpec.r``), so the message names the class whose docstring documents the field.
    """
    prefix, parts = "", [cls.label] if cls.label else []
    owner: type[Spec] | None = cls
    info: FieldInfo | None = None
    for key in loc:
        if isinstance(key, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{key}]"]
            continue
        if owner is not None and owner is not cls and owner.standalone:
            prefix, parts = prefix + ".".join(parts) + ": ", [owner.label]
        parts.append(str(key))
        info = owner.model_fields.get(str(key)) if owner is not None else None
        owner = _spec_type(info.annotation) if info is not None else None
    return prefix + ".".join(parts), owner, info


def allowed(info: FieldInfo) -> str:
    """What a field allows, in words, from its type and constraints (``an integer in [1, 1024]``)."""
    metadata = _metadata(info)
    for meta in metadata:
        if isinstance(meta, Allowed):
            return meta.text
    base = _base(info.annotation)
    if typing.get_origin(base) is Literal:
        words = " | ".join(repr(a) for a in typing.get_args(base))
    elif isinstance(base, type) and issubclass(base, Spec):
        words = f"a mapping of {base.__name__} fields"
    else:
        words = _words(base, metadata)
    if info.description:
        words += f" ({info.description})"
    return f"null or {words}" if type(None) in typing.get_args(info.annotation) else words


def _describe_properties(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    for name, prop in schema.get("properties", {}).items():
        if name in cls.model_fields:
            prop["description"] = allowed(cls.model_fields[name])


def _metadata(info: FieldInfo) -> list[Any]:
    """The field's constraints, including those inside ``Annotated[...] | None``."""
    inner = typing.get_args(info.annotation)
    found = list(info.metadata)
    for arg in inner:
        if typing.get_origin(arg) is Annotated:
            for meta in typing.get_args(arg)[1:]:
                found.extend(meta.metadata if isinstance(meta, FieldInfo) else [meta])
    return found


def _words(base: Any, metadata: list[Any]) -> str:
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(base)
    if kind is None:
        origin = typing.get_origin(base)
        if origin is tuple:
            return "a list of strings" if typing.get_args(base)[:1] == (str,) else "a list"
        if origin in (Mapping, dict) or base in (Mapping, dict):
            return "a mapping"
        return getattr(base, "__name__", str(base))
    if any(isinstance(m, MinLen) and m.min_length >= 1 for m in metadata):
        kind = f"a non-empty {kind.removeprefix('a ')}"
    low = next(((m.ge, "[") for m in metadata if isinstance(m, Ge)), None) or \
        next(((m.gt, "(") for m in metadata if isinstance(m, Gt)), None)
    high = next(((m.le, "]") for m in metadata if isinstance(m, Le)), None) or \
        next(((m.lt, ")") for m in metadata if isinstance(m, Lt)), None)
    if low and high:
        return f"{kind} in {low[1]}{low[0]}, {high[0]}{high[1]}"
    if low:
        return f"{kind} {'>=' if low[1] == '[' else '>'} {low[0]}"
    if high:
        return f"{kind} {'<=' if high[1] == ']' else '<'} {high[0]}"
    return kind


def _base(annotation: Any) -> Any:
    """*annotation* without ``| None`` and without ``Annotated``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else annotation
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation


def _spec_type(annotation: Any) -> type[Spec] | None:
    base = _base(annotation)
    return base if isinstance(base, type) and issubclass(base, Spec) else None


__all__ = ["Allowed", "Invalid", "Seed", "Spec", "allowed", "build", "check_value", "describe", "replace", "to_data"]

"""The one validation mechanism: strict frozen specs whose bad input is one ConfigError line, worded alike."""

from __future__ import annotations

import dataclasses
from typing import Annotated, ClassVar, Literal

import pytest
from pydantic import Field, model_validator

from cleanroom.config import GenerationSpec, RunSpec, load_config
from cleanroom.errors import ConfigError
from cleanroom.spec import Allowed, Invalid, Spec, allowed, build, replace, to_data
from cleanroom.training import LoraSpec, TrainSpec


class Inner(Spec):
    label: ClassVar[str] = "Inner"
    standalone: ClassVar[bool] = True

    k: Annotated[int, Field(ge=1, le=9)] = 1


class Section(Spec):
    ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5
    count: Annotated[int, Field(ge=1)] | None = None
    mode: Literal["a", "b"] = "a"
    tag: Annotated[str, Field(min_length=1), Allowed("a tag such as 'x1'")] = "x"
    inner: Inner = Field(default_factory=Inner)

    @model_validator(mode="after")
    def _count_needs_mode_b(self) -> Section:
        if self.count is not None and self.mode != "b":
            raise Invalid("null unless mode is 'b'", field="count", value=self.count)
        return self


class Root(Spec):
    section: Section = Field(default_factory=Section)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"section": {"ratio": 1}}, "section.ratio = 1.0 is invalid; allowed: a number in (0, 1)"),
        ({"section": {"count": 0, "mode": "b"}}, "section.count = 0 is invalid; allowed: null or an integer >= 1"),
        ({"section": {"mode": "c"}}, "section.mode = 'c' is invalid; allowed: 'a' | 'b'"),
        ({"section": {"tag": ""}}, "section.tag = '' is invalid; allowed: a tag such as 'x1'"),
        ({"section": {"count": 3}}, "section.count = 3 is invalid; allowed: null unless mode is 'b'"),
        ({"section": {"inner": {"k": 10}}}, "section.inner: Inner.k = 10 is invalid; allowed: an integer in [1, 9]"),
        ({"section": {"inner": {"k": True}}}, "section.inner: Inner.k = True is invalid"),  # strict: bool is not int
        ({"section": {"ratio": "0.5"}}, "section.ratio = '0.5' is invalid; allowed: a number in (0, 1)"),
        ({"section": {"mdoe": "a"}}, "section: unknown key(s) 'mdoe' (did you mean 'mode'?); allowed: count, inner,"),
        ({"section": {"ratio": 2, "mode": "c"}}, "section.ratio = 2.0 is invalid; allowed: a number in (0, 1) (and 1 "
                                                  "more problem(s))"),
    ],
)
def test_one_line_names_the_key_path_the_value_and_what_is_allowed(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(Root, data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_direct_construction_raises_the_same_error_naming_the_spec() -> None:
    with pytest.raises(ConfigError, match=r"^Inner\.k = 0 is invalid; allowed: an integer in \[1, 9\]$"):
        Inner(k=0)
    with pytest.raises(ConfigError, match=r"^Inner: unknown key\(s\) 'kk' \(did you mean 'k'\?\); allowed: k$"):
        Inner(kk=1)  # type: ignore[call-arg]


def test_the_same_rule_is_worded_the_same_in_every_spec() -> None:
    """A seed is a seed wherever it appears: the run's, a generation stage's, the data generator's, a TrainSpec's."""
    phrases = {allowed(cls.model_fields[name]) for cls, name in
               [(RunSpec, "seed"), (GenerationSpec, "seed"), (TrainSpec, "seed")]}
    assert phrases == {"an integer in [0, 2**32 - 1]"}
    with pytest.raises(ConfigError, match=r"sft\.train: TrainSpec\.seed = -1 is invalid; allowed: an integer in "
                                          r"\[0, 2\*\*32 - 1\]"):
        load_config("tiny", ["sft.train.seed=-1"])


def test_frozen_replace_validates_and_to_data_round_trips() -> None:
    spec = Section(mode="b", count=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.mode = "a"  # type: ignore[misc]
    assert replace(spec, count=3).count == 3 and spec.count == 2
    with pytest.raises(ConfigError, match="count = 3 is invalid"):
        replace(spec, mode="a", count=3)
    assert to_data(LoraSpec(targets=("q_proj",))) == {"r": 16, "alpha": 32.0, "dropout": 0.0, "targets": ["q_proj"],
                                                      "use_rslora": False}
    assert build(Section, to_data(spec)) == spec


def test_a_float_field_stores_a_float_and_an_integer_field_refuses_one() -> None:
    assert LoraSpec(alpha=16).alpha == 16.0 and isinstance(LoraSpec(alpha=16).alpha, float)
    with pytest.raises(ConfigError, match=r"LoraSpec\.r = 8\.0 is invalid"):
        LoraSpec(r=8.0)  # type: ignore[arg-type]


def test_build_refuses_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match="allowed: a mapping of Root fields"):
        build(Root, [1, 2])  # type: ignore[arg-type]


def test_the_json_schema_carries_the_same_words_and_ranges() -> None:
    schema = LoraSpec.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["r"] | {"title": None} == {"default": 16, "description": "an integer in [1, 1024]",
                                                          "maximum": 1024, "minimum": 1, "type": "integer",
                                                          "title": None}
    steps = TrainSpec.model_json_schema()["properties"]["max_steps"]
    assert (steps["minimum"], steps["not"], steps["description"]) == (-1, {"const": 0},
                                                                       "-1 (use num_epochs) or an integer >= 1")

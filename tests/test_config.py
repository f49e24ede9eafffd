"""Run configs: shipped profiles validate (also against docs/profile.schema.json); bad keys, values, overrides fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cleanroom.config import (
    PROFILES_DIR,
    RunSpec,
    apply_overrides,
    build_spec,
    config_sha256,
    load_config,
    profile_schema,
    profile_schema_json,
    spec_to_dict,
)
from cleanroom.errors import ConfigError, MissingFileError

PROFILES = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def test_the_three_profiles_ship() -> None:
    assert {"tiny", "smollm2", "qwen2.5-32b"} <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_shipped_profile_validates_and_round_trips(profile: str) -> None:
    spec = load_config(profile)
    assert isinstance(spec, RunSpec)
    again = build_spec(RunSpec, spec_to_dict(spec))
    assert again == spec and config_sha256(again) == config_sha256(spec)


def test_production_profile_matches_the_reference_setup() -> None:
    spec = load_config("qwen2.5-32b")
    assert spec.model.path == "Qwen/Qwen2.5-32B" and spec.model.quantization == "nf4"
    assert spec.sft.lora.r == 64 and spec.seed == 3407 and spec.sft.train.max_length == 2048
    assert set(spec.sft.lora.targets) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_smollm2_profile_declares_instruct_with_reason() -> None:
    spec = load_config("smollm2")
    assert spec.model.allow_instruct and spec.model.allow_instruct_reason


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["model.qq=1"], "unknown key(s) 'qq'"),
        (["sft.lora.r=0"], "LoraSpec.r = 0"),
        (["model.quantization=nf8"], "model.quantization = 'nf8'"),
        (["dpo.beta=-1"], "dpo.beta = -1"),
        (["eval.min_n=50"], "eval.override_reason"),
        (["model.allow_instruct=true"], "model.allow_instruct_reason"),
        (["sft.train.learning_rate=abc"], "learning_rate"),
        (["seed=1.5"], "seed = 1.5"),
        (["budget.max_cost_usd=0"], "budget.max_cost_usd"),
        (["preflight.min_free_disk_gb=-1"], "preflight.min_free_disk_gb = -1.0 is invalid; allowed: a number >= 0"),
        (["budget.gpu_memory_gb=-80"], "budget.gpu_memory_gb = -80.0 is invalid; allowed: a number > 0"),
        (["sft.merge_atol=-0.01"], "sft.merge_atol = -0.01 is invalid; allowed: a number in (0, 1)"),
        (["dpo.step0_atol=0"], "dpo.step0_atol = 0.0 is invalid; allowed: a number in (0, 1)"),
        (["eval.generation.seed=-1"], "seed = -1 is invalid; allowed: an integer in [0, 2**32 - 1]"),
        (["pairs.generation.seed=4294967296"], "seed = 4294967296 is invalid"),
        (["seed=-3"], "seed = -3 is invalid"),
        (["data.generator_seed=-5"], "data.generator_seed = -5 is invalid; allowed: an integer in [0, 2**32 - 1]"),
    ],
)
def test_bad_values_name_the_field(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("tiny", overrides)
    assert fragment in str(info.value)


def test_overrides_parse_yaml_values_and_nest() -> None:
    spec = load_config("tiny", ["sft.train.max_steps=7", "sft.lora.targets=[q_proj, v_proj]", "eval.min_n=20",
                                "eval.override_reason=smoke test"])
    assert spec.sft.train.max_steps == 7 and spec.sft.lora.targets == ("q_proj", "v_proj")
    assert spec.eval.min_n == 20
    assert config_sha256(spec) != config_sha256(load_config("tiny"))


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1"])
def test_malformed_overrides(bad: str) -> None:
    with pytest.raises(ConfigError):
        apply_overrides({}, [bad])


def test_unknown_profile_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shipped profiles"):
        load_config("nope")
    with pytest.raises(MissingFileError):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))


def test_config_is_frozen() -> None:
    spec = load_config("tiny")
    with pytest.raises(AttributeError):
        spec.seed = 1  # type: ignore[misc]


SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "profile.schema.json"


def test_the_published_profile_schema_is_the_generated_one() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == profile_schema_json(), (
        "docs/profile.schema.json is stale; regenerate it: python -c 'import cleanroom.config as c; "
        "open(\"docs/profile.schema.json\", \"w\").write(c.profile_schema_json())'"
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_every_shipped_profile_validates_against_the_published_schema(profile: str) -> None:
    import jsonschema  # a dev dependency; imported here so the GPU box (pytest -m gpu, without it) collects this file

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    data = yaml.safe_load((PROFILES_DIR / f"{profile}.yaml").read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(data)] == []


@pytest.mark.parametrize(
    "overrides", [["model.qq=1"], ["sft.lora.r=0"], ["dpo.beta=-1"], ["seed=1.5"], ["model.quantization=nf8"],
                  ["budget.max_cost_usd=0"], ["sft.lora.targets=[q_proj, 3]"], ["data.generator_seed=-5"],
                  ["sft.train.max_steps=0"]],
)
def test_the_schema_refuses_what_the_loader_refuses(overrides: list[str]) -> None:
    """The schema is the models' own, so an editor flags what load_config would refuse (same keys, same ranges)."""
    import jsonschema  # a dev dependency; imported here so the GPU box (pytest -m gpu, without it) collects this file

    validator = jsonschema.Draft202012Validator(profile_schema())
    data = apply_overrides(yaml.safe_load((PROFILES_DIR / "tiny.yaml").read_text(encoding="utf-8")),
                           overrides)
    with pytest.raises(ConfigError):
        build_spec(RunSpec, data)
    assert list(validator.iter_errors(data)), overrides

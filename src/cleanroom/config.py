"""Frozen run specs and the one way to load them: a YAML file plus ``key=value`` overrides.

The YAML is resolved once into frozen, keyword-only :class:`cleanroom.spec.Spec` models (unknown keys and
bad values are a :class:`~cleanroom.errors.ConfigError` naming the key path, the value and what is
allowed), hashed, and written into the run directory before any work starts. Nothing is filled in with a
warning: every default lives in the models below, in one place. :func:`profile_schema` is the same
models as a JSON Schema, published as ``docs/profile.schema.json`` for editors (a profile whose first line
is ``# yaml-language-server: $schema=<path to that file>`` is checked as it is typed).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field, model_validator

from cleanroom.errors import ConfigError, MissingFileError
from cleanroom.provenance import content_sha256
from cleanroom.spec import Allowed, Invalid, Seed, Spec, build, to_data
from cleanroom.training.specs import DpoBeta, LoraSpec, Step0Atol, TrainSpec
from cleanroom.yaml_reader import SafeLoader

#: The shipped profiles: package data of ``cleanroom.pipeline`` (in the wheel too, so no checkout is needed).
PROFILES_DIR = Path(str(resources.files("cleanroom") / "pipeline" / "profiles"))


class ModelSpec(Spec):
    """Which base model, how to load it (see :class:`cleanroom.loader.CleanModelLoader`).

    ``path`` is a local directory, a Hugging Face cache repo id, or the word ``tiny`` / ``smollm2``
    for the offline fixtures. ``random_init`` builds a random-initialised model of the named
    architecture (``qwen2.5-0.5b`` ...) instead of loading weights: for the GPU device, where no
    weights exist.
    """

    label: ClassVar[str] = "model"

    path: Annotated[str, Field(min_length=1, description="a model directory or id")]
    revision: str | None = None
    quantization: Literal["nf4", "int8"] | None = None
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    device_map: str | None = None
    gguf_file: str | None = None
    allow_instruct: bool = False
    allow_instruct_reason: str | None = None
    trust_remote_code: bool = False
    random_init: str | None = None

    @model_validator(mode="after")
    def _instruct_needs_a_reason(self) -> ModelSpec:
        if self.allow_instruct and not (self.allow_instruct_reason and self.allow_instruct_reason.strip()):
            raise Invalid("a non-empty reason when model.allow_instruct is true (it is recorded in provenance)",
                          field="allow_instruct_reason", value=self.allow_instruct_reason)
        return self


class GenerationSpec(Spec):
    """Sampling settings for a generation stage (temperature 0 = greedy)."""

    max_new_tokens: Annotated[int, Field(ge=1, le=32768)] = 128
    temperature: Annotated[float, Field(ge=0, le=5)] = 0.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 8
    seed: Seed = 3407
    # the generation engine (cleanroom.generation): auto picks the fastest one that supports these settings
    engine: Literal["auto", "hf", "static", "paged"] = "auto"


class DataSpec(Spec):
    """Eval set and SFT instruction pool: the embedded generator's, or the user's own files."""

    label: ClassVar[str] = "data"

    eval_prompts: str | None = None
    eval_prompts_sha256: str | None = None
    sft_pool: str | None = None
    sft_pool_sha256: str | None = None
    generator_seed: Seed = 0
    n_eval: Annotated[int, Field(ge=1)] = 300
    n_sft: Annotated[int, Field(ge=1)] = 200
    teacher: Literal["none", "programmatic"] = "none"
    min_sft_survivors: Annotated[int, Field(ge=1)] = 50

    @model_validator(mode="after")
    def _survivors_within_the_pool(self) -> DataSpec:
        if self.min_sft_survivors > self.n_sft:
            raise Invalid(f"an integer in [1, data.n_sft={self.n_sft}]", field="min_sft_survivors",
                          value=self.min_sft_survivors)
        return self


class SFTStageSpec(Spec):
    label: ClassVar[str] = "sft"

    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    eval_fraction: Annotated[float, Field(ge=0, lt=0.5)] = 0.1
    merge_atol: Annotated[float, Field(gt=0, lt=1, description="1e-2 is usual")] = 1e-2


class PairsSpec(Spec):
    """Preference pairs by critique and rewrite."""

    label: ClassVar[str] = "pairs"

    samples_per_instruction: Annotated[int, Field(ge=1, le=64)] = 2
    n_instructions: Annotated[int, Field(ge=1)] = 100
    constitution: str = "constitution.md"
    rewriter: Literal["model", "programmatic"] = "model"
    generation: GenerationSpec = Field(default_factory=lambda: GenerationSpec(temperature=0.8, top_p=0.95))
    min_pairs: Annotated[int, Field(ge=1)] = 20


class DPOStageSpec(Spec):
    label: ClassVar[str] = "dpo"

    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=lambda: TrainSpec(learning_rate=5e-6))
    beta: DpoBeta = 0.1
    step0_atol: Step0Atol = 1e-3


class EvalSpec(Spec):
    label: ClassVar[str] = "eval"

    generation: GenerationSpec = Field(default_factory=lambda: GenerationSpec(temperature=0.0))
    level: Literal["prompt", "instruction"] = "prompt"
    mode: Literal["strict", "loose"] = "strict"
    min_n: Annotated[int, Field(ge=1)] = 200
    override_reason: str | None = None

    @model_validator(mode="after")
    def _small_n_needs_a_reason(self) -> EvalSpec:
        if self.min_n < 200 and not (self.override_reason and self.override_reason.strip()):
            raise Invalid("a non-empty reason when eval.min_n < 200 (recorded in the report)",
                          field="override_reason", value=self.override_reason)
        return self


class BudgetSpec(Spec):
    label: ClassVar[str] = "budget"

    price_per_hour: Annotated[float, Field(ge=0)] = 1.74
    max_cost_usd: Annotated[float, Field(gt=0)] | None = None
    max_hours: Annotated[float, Field(gt=0)] | None = None
    gpu_memory_gb: Annotated[float, Field(gt=0)] = 80.0
    gate_report: str | None = None  # a gate-report.json: its measured tokens/s replace the nominal rates


class PreflightSpec(Spec):
    """Reasons that let a run go ahead outside the usual ranges (recorded, shown in the report)."""

    label: ClassVar[str] = "preflight"

    lora_scale_reason: str | None = None
    learning_rate_reason: str | None = None
    min_free_disk_gb: Annotated[float, Field(ge=0)] = 1.0


class RunSpec(Spec):
    """Everything a Stage 1 run needs; its canonical JSON hash identifies the run."""

    name: Annotated[str, Field(pattern=r"^[\w.-]+$"), Allowed("letters, digits, '-', '_' and '.'")]
    seed: Seed = 3407
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["peft", "unsloth", "auto"] = "peft"  # auto: cleanroom.backend.resolve_backend
    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"
    model: ModelSpec
    baseline: GenerationSpec = Field(default_factory=lambda: GenerationSpec(temperature=0.1))
    data: DataSpec = Field(default_factory=DataSpec)
    sft_generation: GenerationSpec = Field(default_factory=GenerationSpec)
    sft: SFTStageSpec = Field(default_factory=SFTStageSpec)
    pairs: PairsSpec = Field(default_factory=PairsSpec)
    dpo: DPOStageSpec = Field(default_factory=DPOStageSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    preflight: PreflightSpec = Field(default_factory=PreflightSpec)

    @model_validator(mode="after")
    def _floors_fill_a_step(self) -> RunSpec:
        """The floors the data stages enforce must leave SFT and DPO a whole global batch: a stage that passes at
        its floor would otherwise hand training too few rows, which fails only after the generation was paid."""
        checks = (("data.min_sft_survivors", self.data.min_sft_survivors, "sft", self.sft.train,
                   sft_train_count(self.data.min_sft_survivors, self.sft.eval_fraction), "training rows after the eval split"),
                  ("pairs.min_pairs", self.pairs.min_pairs, "dpo", self.dpo.train, self.pairs.min_pairs, "pairs"))
        for floor, value, name, train, count, what in checks:
            step = train.batch_size * train.gradient_accumulation_steps
            if count < step:
                raise Invalid(
                    f"a floor that leaves {name.upper()} at least one global batch of {step} ({name}.train.batch_size "
                    f"{train.batch_size} x gradient_accumulation_steps {train.gradient_accumulation_steps}); at this "
                    f"floor it gets {count} {what} — raise {floor} or lower the batch", field=floor, value=value)
        return self

    @model_validator(mode="after")
    def _one_tracking_switch(self) -> RunSpec:
        for stage in ("sft", "dpo"):  # one switch for experiment tracking: the top-level report_to
            value = getattr(self, stage).train.report_to
            if value not in ("none", self.report_to):
                raise Invalid(f"'none' or the top-level report_to ({self.report_to!r}); set report_to at the "
                              "top level", field=f"{stage}.train.report_to", value=value)
        return self


def sft_train_count(n: int, eval_fraction: float) -> int:
    """How many of *n* SFT examples train once ``eval_fraction`` of them is held out (at least one, and only
    from 10 examples up): the split :mod:`cleanroom.pipeline.training` makes."""
    return n if eval_fraction <= 0 or n < 10 else n - max(1, int(round(n * eval_fraction)))


# --------------------------------------------------------------------------- loading


def build_spec(cls: type[Spec], data: Mapping[str, Any]) -> Any:
    """Construct spec *cls* from *data* (parsed YAML); unknown keys and bad values raise ConfigError."""
    return build(cls, data)


def spec_to_dict(spec: Any) -> Any:
    """The resolved config as plain JSON/YAML-able data (tuples become lists)."""
    return to_data(spec)


def profile_schema() -> dict[str, Any]:
    """The profile format (a :class:`RunSpec` as YAML) as a JSON Schema: ``docs/profile.schema.json``."""
    schema = RunSpec.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "cleanroom profile"}


def profile_schema_json() -> str:
    """:func:`profile_schema` as the text committed under ``docs/`` (stable key order, one trailing newline)."""
    return json.dumps(profile_schema(), indent=2, ensure_ascii=False) + "\n"


class _UniqueKeyLoader(SafeLoader):
    """The one YAML reader's safe loader (:mod:`cleanroom.yaml_reader`), refusing a key given twice in one mapping (PyYAML keeps the last one silently, so
    the config that runs is not the one the reader of the file sees)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor``: merged keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                twice = key in seen
            except TypeError:  # an unhashable key: the base loader refuses it with its position
                continue
            if twice:
                raise ConfigError(f"key {key!r} is given twice in one mapping (lines {seen[key]} and "
                                  f"{key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested mapping, returning a copy.

    A key given twice is an error: which value wins would depend on the order of the command line."""
    result = copy.deepcopy(data)
    given: set[str] = set()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (example: sft.train.max_steps=20)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key segment")
        if ".".join(parts) in given:
            raise ConfigError(f"override {item!r}: {'.'.join(parts)} is given twice on the command line; keep one")
        given.add(".".join(parts))
        shown = item if len(item) <= 120 else f"{item[:100]}..."  # a 5,000-digit value is named, not repeated
        try:
            value = _load_yaml(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {shown!r}: value {_yaml_problem(exc)}") from None
        except ConfigError as exc:
            raise ConfigError(f"override {shown!r}: {exc}") from None
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's error as one line: ``line L column C: problem`` (its str() is a multi-line excerpt dump)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"not valid YAML at {where}{problem}" + (f" ({context})" if context else "")


def profile_path(profile: str) -> Path:
    """The shipped ``<profile>.yaml`` (:data:`PROFILES_DIR`) for a profile name, or *profile* itself if it is a file."""
    candidate = Path(profile)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_dir():
            raise MissingFileError(f"config file {candidate} is a directory; pass a YAML file (or a profile name)")
        if not candidate.is_file():
            raise MissingFileError(f"config file {candidate} does not exist")
        return candidate
    path = PROFILES_DIR / f"{profile}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown profile {profile!r}; shipped profiles: {', '.join(shipped)} (or pass a .yaml path)")
    return path


def load_config(profile: str, overrides: Sequence[str] = ()) -> RunSpec:
    """Load a profile (name or YAML path), apply overrides, validate into a :class:`RunSpec`."""
    path = profile_path(profile)
    try:
        data = _load_yaml(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                          "re-encode the file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {_yaml_problem(exc)}; fix the YAML there") from None
    except ConfigError as exc:  # a key given twice
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of config keys")
    return build_spec(RunSpec, apply_overrides(data, overrides))


#: Top-level fields that change how a run is operated, never what it computes: left out of the run's
#: identity (its config digest and run id), so raising the budget resumes the same run. They are recorded,
#: with every change, in run.json's ``settings`` (see cleanroom/pipeline/stage1.py).
OPERATIONAL_FIELDS = ("budget", "report_to")


def identity_dict(spec: RunSpec) -> dict[str, Any]:
    """The resolved config without :data:`OPERATIONAL_FIELDS`: what ``config.resolved.yaml`` holds."""
    return {k: v for k, v in spec_to_dict(spec).items() if k not in OPERATIONAL_FIELDS}


def operational_dict(spec: RunSpec) -> dict[str, Any]:
    """The :data:`OPERATIONAL_FIELDS` of the resolved config (budget, experiment tracking)."""
    data = spec_to_dict(spec)
    return {k: data[k] for k in OPERATIONAL_FIELDS}


def config_sha256(spec: RunSpec) -> str:
    """The run's identity: the digest of :func:`identity_dict` (the same one RunDir records in run.json)."""
    return content_sha256(identity_dict(spec))

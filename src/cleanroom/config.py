"""Frozen run specs and the one way to load them: a YAML file plus ``key=value`` overrides.

The YAML is resolved once into frozen, keyword-only dataclasses (unknown keys and bad values are
a :class:`~cleanroom.errors.ConfigError` naming the field, the value and what is allowed), hashed,
and written into the run directory before any work starts. Nothing is filled in with a warning:
every default lives in the dataclass definitions below, in one place.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cleanroom.errors import ConfigError, MissingFileError
from cleanroom.provenance import content_sha256
from cleanroom.training.specs import LoraSpec, TrainSpec

PIPELINES_DIR = Path(__file__).resolve().parents[2] / "pipelines"


def _fail(where: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{where} = {value!r} is invalid; allowed: {allowed}")


def _require(ok: bool, where: str, value: Any, allowed: str) -> None:
    if not ok:
        _fail(where, value, allowed)


SEED_RANGE = "an integer in [0, 2**32 - 1]"


def _is_seed(value: Any) -> bool:
    """numpy and torch seeds: a non-negative integer below 2**32 (bool is not a seed)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def _is_positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Which base model, how to load it (see :class:`cleanroom.loader.CleanModelLoader`).

    ``path`` is a local directory, a Hugging Face cache repo id, or the word ``tiny`` / ``smollm2``
    for the offline fixtures. ``random_init`` builds a random-initialised model of the named
    architecture (``qwen2.5-0.5b`` ...) instead of loading weights: for the GPU device, where no
    weights exist.
    """

    path: str
    revision: str | None = None
    quantization: Literal["nf4", "int8"] | None = None
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    device_map: str | None = None
    gguf_file: str | None = None
    allow_instruct: bool = False
    allow_instruct_reason: str | None = None
    trust_remote_code: bool = False
    random_init: str | None = None

    def __post_init__(self) -> None:
        _require(isinstance(self.path, str) and bool(self.path), "model.path", self.path, "a model directory or id")
        if self.allow_instruct:
            _require(bool(self.allow_instruct_reason and self.allow_instruct_reason.strip()),
                     "model.allow_instruct_reason", self.allow_instruct_reason,
                     "a non-empty reason when model.allow_instruct is true (it is recorded in provenance)")


@dataclass(frozen=True, kw_only=True)
class GenerationSpec:
    """Sampling settings for a generation stage (temperature 0 = greedy)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 3407
    # the generation engine (cleanroom.generation): auto picks the fastest one that supports these settings
    engine: Literal["auto", "hf", "static", "paged"] = "auto"

    def __post_init__(self) -> None:
        _require(isinstance(self.max_new_tokens, int) and 1 <= self.max_new_tokens <= 32768,
                 "max_new_tokens", self.max_new_tokens, "an integer in [1, 32768]")
        _require(isinstance(self.temperature, int | float) and 0 <= self.temperature <= 5,
                 "temperature", self.temperature, "a number in [0, 5]")
        _require(isinstance(self.top_p, int | float) and 0 < self.top_p <= 1, "top_p", self.top_p, "(0, 1]")
        _require(isinstance(self.batch_size, int) and 1 <= self.batch_size <= 4096,
                 "batch_size", self.batch_size, "an integer in [1, 4096]")
        _require(_is_seed(self.seed), "seed", self.seed, SEED_RANGE)


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """Eval set and SFT instruction pool: the embedded generator's, or the user's own files."""

    eval_prompts: str | None = None
    eval_prompts_sha256: str | None = None
    sft_pool: str | None = None
    sft_pool_sha256: str | None = None
    generator_seed: int = 0
    n_eval: int = 300
    n_sft: int = 200
    teacher: Literal["none", "programmatic"] = "none"
    min_sft_survivors: int = 50

    def __post_init__(self) -> None:
        _require(isinstance(self.n_eval, int) and self.n_eval >= 1, "data.n_eval", self.n_eval, ">= 1")
        _require(_is_seed(self.generator_seed), "data.generator_seed", self.generator_seed, SEED_RANGE)
        _require(isinstance(self.n_sft, int) and self.n_sft >= 1, "data.n_sft", self.n_sft, ">= 1")
        _require(isinstance(self.min_sft_survivors, int) and 1 <= self.min_sft_survivors <= self.n_sft,
                 "data.min_sft_survivors", self.min_sft_survivors, f"an integer in [1, data.n_sft={self.n_sft}]")


@dataclass(frozen=True, kw_only=True)
class SFTStageSpec:
    lora: LoraSpec = field(default_factory=LoraSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    eval_fraction: float = 0.1
    merge_atol: float = 1e-2

    def __post_init__(self) -> None:
        _require(isinstance(self.eval_fraction, int | float) and 0 <= self.eval_fraction < 0.5,
                 "sft.eval_fraction", self.eval_fraction, "[0, 0.5)")
        _require(_is_positive(self.merge_atol) and self.merge_atol < 1, "sft.merge_atol", self.merge_atol,
                 "a number in (0, 1) (1e-2 is usual)")


@dataclass(frozen=True, kw_only=True)
class PairsSpec:
    """Preference pairs by critique and rewrite."""

    samples_per_instruction: int = 2
    n_instructions: int = 100
    constitution: str = "constitution.md"
    rewriter: Literal["model", "programmatic"] = "model"
    generation: GenerationSpec = field(default_factory=lambda: GenerationSpec(temperature=0.8, top_p=0.95))
    min_pairs: int = 20

    def __post_init__(self) -> None:
        _require(isinstance(self.samples_per_instruction, int) and 1 <= self.samples_per_instruction <= 64,
                 "pairs.samples_per_instruction", self.samples_per_instruction, "[1, 64]")
        _require(isinstance(self.n_instructions, int) and self.n_instructions >= 1,
                 "pairs.n_instructions", self.n_instructions, ">= 1")
        _require(isinstance(self.min_pairs, int) and self.min_pairs >= 1, "pairs.min_pairs", self.min_pairs, ">= 1")


@dataclass(frozen=True, kw_only=True)
class DPOStageSpec:
    lora: LoraSpec = field(default_factory=LoraSpec)
    train: TrainSpec = field(default_factory=lambda: TrainSpec(learning_rate=5e-6))
    beta: float = 0.1
    step0_atol: float = 1e-3

    def __post_init__(self) -> None:
        _require(isinstance(self.beta, int | float) and 0 < self.beta <= 10, "dpo.beta", self.beta, "(0, 10]")
        _require(_is_positive(self.step0_atol) and self.step0_atol < 1, "dpo.step0_atol", self.step0_atol,
                 "a number in (0, 1) (1e-3 is usual)")


@dataclass(frozen=True, kw_only=True)
class EvalSpec:
    generation: GenerationSpec = field(default_factory=lambda: GenerationSpec(temperature=0.0))
    level: Literal["prompt", "instruction"] = "prompt"
    mode: Literal["strict", "loose"] = "strict"
    min_n: int = 200
    override_reason: str | None = None

    def __post_init__(self) -> None:
        _require(isinstance(self.min_n, int) and self.min_n >= 1, "eval.min_n", self.min_n, ">= 1")
        if self.min_n < 200:
            _require(bool(self.override_reason and self.override_reason.strip()), "eval.override_reason",
                     self.override_reason, "a non-empty reason when eval.min_n < 200 (recorded in the report)")


@dataclass(frozen=True, kw_only=True)
class BudgetSpec:
    price_per_hour: float = 1.74
    max_cost_usd: float | None = None
    max_hours: float | None = None
    gpu_memory_gb: float = 80.0
    gate_report: str | None = None  # a gate-report.json: its measured tokens/s replace the nominal rates

    def __post_init__(self) -> None:
        _require(isinstance(self.price_per_hour, int | float) and self.price_per_hour >= 0,
                 "budget.price_per_hour", self.price_per_hour, ">= 0")
        _require(_is_positive(self.gpu_memory_gb), "budget.gpu_memory_gb", self.gpu_memory_gb, "a number > 0")
        for name in ("max_cost_usd", "max_hours"):
            value = getattr(self, name)
            _require(value is None or (isinstance(value, int | float) and value > 0), f"budget.{name}", value,
                     "null or a number > 0")


@dataclass(frozen=True, kw_only=True)
class PreflightSpec:
    """Reasons that let a run go ahead outside the usual ranges (recorded, shown in the report)."""

    lora_scale_reason: str | None = None
    learning_rate_reason: str | None = None
    min_free_disk_gb: float = 1.0

    def __post_init__(self) -> None:
        _require(isinstance(self.min_free_disk_gb, int | float) and not isinstance(self.min_free_disk_gb, bool)
                 and self.min_free_disk_gb >= 0, "preflight.min_free_disk_gb", self.min_free_disk_gb, "a number >= 0")


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Everything a Stage 1 run needs; its canonical JSON hash identifies the run."""

    name: str
    seed: int = 3407
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["peft", "unsloth", "auto"] = "peft"  # auto: cleanroom.backend.resolve_backend
    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"
    model: ModelSpec
    baseline: GenerationSpec = field(default_factory=lambda: GenerationSpec(temperature=0.1))
    data: DataSpec = field(default_factory=DataSpec)
    sft_generation: GenerationSpec = field(default_factory=GenerationSpec)
    sft: SFTStageSpec = field(default_factory=SFTStageSpec)
    pairs: PairsSpec = field(default_factory=PairsSpec)
    dpo: DPOStageSpec = field(default_factory=DPOStageSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    budget: BudgetSpec = field(default_factory=BudgetSpec)
    preflight: PreflightSpec = field(default_factory=PreflightSpec)

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and self.name.replace("-", "").replace("_", "").replace(".", "").isalnum(),
                 "name", self.name, "letters, digits, '-', '_' and '.'")
        _require(_is_seed(self.seed), "seed", self.seed, SEED_RANGE)
        for stage in ("sft", "dpo"):  # one switch for experiment tracking: the top-level report_to
            value = getattr(self, stage).train.report_to
            _require(value in ("none", self.report_to), f"{stage}.train.report_to", value,
                     f"'none' or the top-level report_to ({self.report_to!r}); set report_to at the top level")


# --------------------------------------------------------------------------- loading


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Build *value* as type *tp*: nested specs recursively; scalars checked; lists to tuples."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        cls = typing.cast(type, tp)  # a type hint here, never a dataclass instance
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            _fail(where, value, f"a mapping of {cls.__name__} fields")
        return build_spec(cls, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            _require(type(None) in args, where, value, "a value (null is not allowed here)")
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is Literal:
        allowed = typing.get_args(tp)
        _require(value in allowed, where, value, " | ".join(repr(a) for a in allowed))
        return value
    if origin is tuple:
        _require(isinstance(value, Sequence) and not isinstance(value, str), where, value, "a list")
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        return tuple(_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp in (Mapping, dict):
        _require(isinstance(value, Mapping), where, value, "a mapping")
        return dict(value)
    if tp is bool:
        _require(isinstance(value, bool), where, value, "true or false")
    elif tp is int:
        _require(isinstance(value, int) and not isinstance(value, bool), where, value, "an integer")
    elif tp is float:
        _require(isinstance(value, int | float) and not isinstance(value, bool), where, value, "a number")
        return float(value)
    elif tp is str:
        _require(isinstance(value, str), where, value, "a string")
    return value


def build_spec(cls: type, data: Mapping[str, Any], where: str = "config") -> Any:
    """Construct frozen dataclass *cls* from *data*; unknown keys and bad values raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; allowed: {', '.join(sorted(names))}"
        )
    kwargs = {key: _convert(hints[key], value, f"{where}.{key}" if where != "config" else key)
              for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}; see the profiles under pipelines/ for a complete example") from None


def spec_to_dict(spec: Any) -> Any:
    """The resolved config as plain JSON/YAML-able data (tuples become lists)."""
    if dataclasses.is_dataclass(spec):
        return {f.name: spec_to_dict(getattr(spec, f.name)) for f in dataclasses.fields(spec)}
    if isinstance(spec, tuple | list):
        return [spec_to_dict(v) for v in spec]
    if isinstance(spec, Mapping):
        return {str(k): spec_to_dict(v) for k, v in spec.items()}
    return spec


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested mapping, returning a copy."""
    result = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (example: sft.train.max_steps=20)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key segment")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value {_yaml_problem(exc)}") from None
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
    """``pipelines/<profile>.yaml`` for a shipped profile name, or *profile* itself if it is a file."""
    candidate = Path(profile)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise MissingFileError(f"config file {candidate} does not exist")
        return candidate
    path = PIPELINES_DIR / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in (PIPELINES_DIR / "profiles").glob("*.yaml"))
        raise ConfigError(f"unknown profile {profile!r}; shipped profiles: {', '.join(shipped)} (or pass a .yaml path)")
    return path


def load_config(profile: str, overrides: Sequence[str] = ()) -> RunSpec:
    """Load a profile (name or YAML path), apply overrides, validate into a :class:`RunSpec`."""
    path = profile_path(profile)
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                          "re-encode the file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {_yaml_problem(exc)}; fix the YAML there") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of config keys")
    return build_spec(RunSpec, apply_overrides(data, overrides))


#: Top-level fields that change how a run is operated, never what it computes: left out of the run's
#: identity (its config digest and run id), so raising the budget resumes the same run. They are recorded,
#: with every change, in run.json's ``settings`` (see pipelines/stage1.py).
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

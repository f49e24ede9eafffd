"""Frozen training specs: what LoRA to attach and how to train, validated at construction.

Bad values are rejected, never repaired: each check names the field, the value that arrived and the
allowed range. The specs are plain data (no torch import); ``LoraSpec.to_peft()`` and
``TrainSpec.trainer_kwargs()`` translate them into PEFT / TRL arguments when training starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cleanroom.errors import ConfigError

#: All attention and MLP projections of a Qwen2/Llama-style decoder (the QLoRA paper's recommendation).
ALL_PROJECTIONS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Modules LoRA must not target here: they are tied/huge, and the DPO trainer refuses ``lm_head``.
_FORBIDDEN_TARGETS = frozenset({"lm_head", "embed_tokens"})
SCHEDULERS = frozenset({"linear", "cosine", "constant", "constant_with_warmup"})
OPTIMIZERS = frozenset({"adamw_torch", "adamw_torch_fused", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit"})
PRECISIONS = frozenset({"auto", "bf16", "fp32"})
REPORT_TO = frozenset({"none", "tensorboard", "wandb", "mlflow"})
#: Keys a TrainSpec sets itself; ``trl_overrides`` may not shadow them (one source of truth per value).
_OWNED_KEYS = frozenset(
    {
        "output_dir", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
        "per_device_eval_batch_size", "gradient_accumulation_steps", "max_length", "warmup_steps",
        "lr_scheduler_type", "weight_decay", "max_grad_norm", "seed", "data_seed", "logging_steps",
        "save_steps", "save_strategy", "save_total_limit", "eval_steps", "eval_strategy",
        "gradient_checkpointing", "bf16", "fp16", "optim", "report_to", "load_best_model_at_end",
        "metric_for_best_model", "greater_is_better", "completion_only_loss", "dataset_kwargs", "beta",
        "padding_free",
    }
)


def _check(ok: bool, spec: str, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{spec}.{name} = {value!r} is invalid; allowed: {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class LoraSpec:
    """A LoRA adapter: rank ``r``, scale ``alpha / r`` (or ``alpha / sqrt(r)`` with rsLoRA), targets.

    The update is ``W x + (alpha / r) * B A x`` with ``B = 0`` at init, so a fresh adapter leaves the
    model's function unchanged (the property the DPO step-0 check and the GPU gate rely on).
    """

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ALL_PROJECTIONS
    use_rslora: bool = False

    def __post_init__(self) -> None:
        _check(_is_int(self.r) and 1 <= self.r <= 1024, "LoraSpec", "r", self.r, "an integer in [1, 1024]")
        _check(_is_num(self.alpha) and 0 < self.alpha <= 4096, "LoraSpec", "alpha", self.alpha, "a number in (0, 4096]")
        _check(_is_num(self.dropout) and 0 <= self.dropout < 1, "LoraSpec", "dropout", self.dropout, "a number in [0, 1)")
        targets = self.targets
        _check(
            isinstance(targets, tuple | list) and len(targets) > 0 and all(isinstance(t, str) and t for t in targets),
            "LoraSpec", "targets", targets, "a non-empty sequence of module names, e.g. " + ",".join(ALL_PROJECTIONS),
        )
        bad = sorted(set(targets) & _FORBIDDEN_TARGETS)
        _check(not bad, "LoraSpec", "targets", targets, f"attention/MLP projections only (not {bad})")
        _check(len(set(targets)) == len(targets), "LoraSpec", "targets", targets, "names without duplicates")
        object.__setattr__(self, "targets", tuple(targets))
        _check(isinstance(self.use_rslora, bool), "LoraSpec", "use_rslora", self.use_rslora, "True or False")

    @property
    def scale(self) -> float:
        """The factor multiplying ``B A x``: ``alpha / r`` (``alpha / sqrt(r)`` with rsLoRA)."""
        return self.alpha / (self.r**0.5 if self.use_rslora else self.r)

    def to_peft(self) -> Any:
        """The matching ``peft.LoraConfig`` (task CAUSAL_LM, no bias, B initialised to zero)."""
        from peft import LoraConfig  # heavy optional: peft

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,  # type: ignore[arg-type]  # peft annotates int; it only divides by r, a float is fine
            lora_dropout=self.dropout,
            target_modules=list(self.targets),
            bias="none",
            task_type="CAUSAL_LM",
            use_rslora=self.use_rslora,
        )


@dataclass(frozen=True, kw_only=True)
class TrainSpec:
    """How to train: optimisation, lengths, checkpoints, early stopping, precision.

    ``max_steps = -1`` trains ``num_epochs`` epochs. ``warmup_ratio`` is a fraction of the total steps.
    ``precision="auto"`` means bf16 mixed precision on a CUDA device with bf16 support, fp32 elsewhere.
    ``early_stopping_patience`` (evaluations without an eval-loss improvement larger than
    ``early_stopping_threshold``) needs eval examples; evaluation runs every ``save_steps`` so the best
    checkpoint can be restored. ``trl_overrides`` passes further ``SFTConfig``/``DPOConfig`` fields
    verbatim (e.g. ``dataloader_num_workers``); it may not shadow a field this spec owns.
    ``padding_free`` (SFT only; opt-in until the H200 side-by-side in docs/training-speed.md shows it wins at
    equal loss) concatenates each batch into one row with position IDs restarting per example instead of
    padding; the guard then checks every packed sequence on its own.
    """

    learning_rate: float = 2e-4
    num_epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 2
    gradient_accumulation_steps: int = 1
    max_length: int = 2048
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 3407
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int | None = 2
    early_stopping_patience: int | None = None
    early_stopping_threshold: float = 0.0
    gradient_checkpointing: bool = True
    precision: str = "auto"
    optim: str = "adamw_torch"
    report_to: str = "none"
    padding_free: bool = False
    trl_overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = "TrainSpec"
        _check(_is_num(self.learning_rate) and 0 < self.learning_rate <= 1, s, "learning_rate", self.learning_rate, "(0, 1]")
        _check(_is_num(self.num_epochs) and 0 < self.num_epochs <= 1000, s, "num_epochs", self.num_epochs, "(0, 1000]")
        _check(_is_int(self.max_steps) and (self.max_steps == -1 or self.max_steps >= 1), s, "max_steps",
               self.max_steps, "-1 (use num_epochs) or an integer >= 1")
        _check(_is_int(self.batch_size) and 1 <= self.batch_size <= 4096, s, "batch_size", self.batch_size, "[1, 4096]")
        _check(_is_int(self.gradient_accumulation_steps) and 1 <= self.gradient_accumulation_steps <= 4096, s,
               "gradient_accumulation_steps", self.gradient_accumulation_steps, "[1, 4096]")
        _check(_is_int(self.max_length) and 8 <= self.max_length <= 1 << 20, s, "max_length", self.max_length,
               "an integer in [8, 1048576]")
        _check(_is_num(self.warmup_ratio) and 0 <= self.warmup_ratio < 1, s, "warmup_ratio", self.warmup_ratio, "[0, 1)")
        _check(self.lr_scheduler in SCHEDULERS, s, "lr_scheduler", self.lr_scheduler, str(sorted(SCHEDULERS)))
        _check(_is_num(self.weight_decay) and 0 <= self.weight_decay <= 1, s, "weight_decay", self.weight_decay, "[0, 1]")
        _check(_is_num(self.max_grad_norm) and self.max_grad_norm > 0, s, "max_grad_norm", self.max_grad_norm, "> 0")
        _check(_is_int(self.seed) and 0 <= self.seed < 2**32, s, "seed", self.seed, "an integer in [0, 2**32)")
        _check(_is_int(self.logging_steps) and self.logging_steps >= 1, s, "logging_steps", self.logging_steps, ">= 1")
        _check(_is_int(self.save_steps) and self.save_steps >= 1, s, "save_steps", self.save_steps, ">= 1")
        _check(self.save_total_limit is None or (_is_int(self.save_total_limit) and self.save_total_limit >= 1), s,
               "save_total_limit", self.save_total_limit, "None or an integer >= 1")
        _check(self.early_stopping_patience is None
               or (_is_int(self.early_stopping_patience) and self.early_stopping_patience >= 1), s,
               "early_stopping_patience", self.early_stopping_patience, "None or an integer >= 1")
        _check(_is_num(self.early_stopping_threshold) and self.early_stopping_threshold >= 0, s,
               "early_stopping_threshold", self.early_stopping_threshold, ">= 0")
        _check(isinstance(self.gradient_checkpointing, bool), s, "gradient_checkpointing",
               self.gradient_checkpointing, "True or False")
        _check(self.precision in PRECISIONS, s, "precision", self.precision, str(sorted(PRECISIONS)))
        _check(self.optim in OPTIMIZERS, s, "optim", self.optim, str(sorted(OPTIMIZERS)))
        _check(self.report_to in REPORT_TO, s, "report_to", self.report_to, str(sorted(REPORT_TO)))
        _check(isinstance(self.padding_free, bool), s, "padding_free", self.padding_free, "True or False")
        _check(isinstance(self.trl_overrides, Mapping), s, "trl_overrides", self.trl_overrides, "a mapping")
        shadowed = sorted(set(self.trl_overrides) & _OWNED_KEYS)
        _check(not shadowed, s, "trl_overrides", dict(self.trl_overrides),
               f"keys other than {shadowed}, which TrainSpec sets itself (use its own fields)")
        object.__setattr__(self, "trl_overrides", dict(self.trl_overrides))

    def use_bf16(self) -> bool:
        """Whether to train in bf16 mixed precision (``auto``: CUDA with bf16 support)."""
        if self.precision != "auto":
            return self.precision == "bf16"
        import torch  # heavy optional: torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())

    def trainer_kwargs(self, output_dir: str, *, has_eval: bool) -> dict[str, Any]:
        """Keyword arguments shared by ``SFTConfig`` and ``DPOConfig`` (adapters-only checkpoints)."""
        if self.early_stopping_patience is not None and not has_eval:
            raise ConfigError(
                "TrainSpec.early_stopping_patience is set but no eval examples were given; pass eval_examples "
                "or set early_stopping_patience=None"
            )
        bf16 = self.use_bf16()
        kwargs: dict[str, Any] = dict(
            output_dir=output_dir,
            learning_rate=float(self.learning_rate),
            num_train_epochs=float(self.num_epochs),
            max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size,
            per_device_eval_batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            max_length=self.max_length,
            warmup_steps=float(self.warmup_ratio),  # transformers: a value < 1 is a ratio of total steps
            lr_scheduler_type=self.lr_scheduler,
            weight_decay=float(self.weight_decay),
            max_grad_norm=float(self.max_grad_norm),
            seed=self.seed,
            data_seed=self.seed,
            logging_steps=self.logging_steps,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit,
            gradient_checkpointing=self.gradient_checkpointing,
            bf16=bf16,
            fp16=False,
            optim=self.optim,
            report_to=[] if self.report_to == "none" else [self.report_to],
        )
        if has_eval:
            kwargs.update(eval_strategy="steps", eval_steps=self.save_steps)
        if self.early_stopping_patience is not None:
            kwargs.update(load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)
        kwargs.update(self.trl_overrides)
        return kwargs


__all__ = ["ALL_PROJECTIONS", "LoraSpec", "TrainSpec"]

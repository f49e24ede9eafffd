"""Frozen training specs: what LoRA to attach and how to train, validated at construction.

Bad values are rejected, never repaired: both are :class:`cleanroom.spec.Spec` models, so a bad value is a
ConfigError naming the field (``TrainSpec.learning_rate``), the value that arrived and the allowed range. The specs are plain data (no torch import); ``LoraSpec.to_peft()`` and
``TrainSpec.trainer_kwargs()`` translate them into PEFT / TRL arguments when training starts.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from cleanroom.errors import ConfigError
from cleanroom.spec import Allowed, Invalid, Seed, Spec

#: All attention and MLP projections of a Qwen2/Llama-style decoder (the QLoRA paper's recommendation).
ALL_PROJECTIONS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Modules LoRA must not target here: they are tied/huge, and the DPO trainer refuses ``lm_head``.
_FORBIDDEN_TARGETS = frozenset({"lm_head", "embed_tokens"})
#: Keys a TrainSpec sets itself; ``trl_overrides`` may not shadow them (one source of truth per value).
_OWNED_KEYS = frozenset(
    {
        "output_dir", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
        "per_device_eval_batch_size", "gradient_accumulation_steps", "max_length", "warmup_steps",
        "lr_scheduler_type", "weight_decay", "max_grad_norm", "seed", "data_seed", "logging_steps",
        "save_steps", "save_strategy", "save_total_limit", "eval_steps", "eval_strategy",
        "gradient_checkpointing", "bf16", "fp16", "optim", "report_to", "load_best_model_at_end",
        "metric_for_best_model", "greater_is_better", "completion_only_loss", "dataset_kwargs", "beta",
        "padding_free", "precompute_ref_log_probs", "pad_to_multiple_of", "train_sampling_strategy",
    }
)


#: DPO's weight on the KL term, and how far the step-0 loss and margin may sit from ln 2 and 0: the
#: arguments of :func:`cleanroom.training.train_dpo` and the profile's ``dpo`` section, one rule each.
DpoBeta = Annotated[float, Field(gt=0, le=10, description="0.1 is common")]
Step0Atol = Annotated[float, Field(gt=0, lt=1, description="1e-3 is usual")]


#: Why each speed lever is set as it is (TrainSpec.levers): lever -> {setting: reason}.
LEVER_REASONS: dict[str, dict[bool, str]] = {
    "padding_free": {
        False: "default: right-padded batches (H200, nf4, batch 8, SFT: on peft, packed rows ran at 0.93x the padded "
               "path at 1.5B but at 1.45x TRL's defaults at 7B with 0.77x its peak memory; on Unsloth, the GPU "
               "default, padded SFT batches ran faster at 7B, 1.85x TRL against 1.67x. DPO at 7B (H100): packed ran "
               "at 1.83x TRL's DPOTrainer on peft and 1.82x on Unsloth at 0.63x its memory, so a DPO stage at 7B or "
               "larger should set it, as the production profile does; docs/training-speed.md, sessions 18, 22, 23)",
        True: "chosen: packed rows, no pad tokens computed; position IDs restart per example (SFT: the guard checks "
              "each packed sequence; DPO: the guarded padded batch is packed in the forward; padded and packed "
              "losses agree within 1e-4 (SFT) and 1e-5 (DPO) on the CPU)",
    },
    "kbit_fp32_upcast": {
        False: "default: non-quantized weights stay in the loaded dtype, as in TRL's trainers (H200, 1.5B nf4, "
               "batch 8: 1.11x TRL's defaults at its peak memory and losses, where the upcast path ran at 0.75x "
               "with 1.6x the memory; docs/training-speed.md)",
        True: "chosen: peft prepare_model_for_kbit_training casts non-quantized weights to fp32 (slower, more memory)",
    },
    "pad_to_multiple_of": {
        False: "default: each batch padded to its longest row (TRL's default off Neuron; H200, 1.5B nf4: 256-token "
               "buckets took Unsloth from 1.88x to 1.97x TRL's tokens/s and left peft at 1.06x vs 1.07x; "
               "docs/training-speed.md)",
        True: "chosen: each batch padded to a multiple of this many tokens, so a compiled backend (Unsloth) meets "
              "a few bucketed shapes instead of a new one per batch; pad positions are masked out of attention "
              "and loss, and the guard reads the real tokens through the attention mask",
    },
    "precompute_ref_log_probs": {
        False: "default: the reference forward runs in every DPO step",
        True: "chosen: reference log-probs computed once before training (no reference forward per step); their "
              "sha256 is recorded and the step-0 check compares the policy with them",
    },
    "group_by_length": {
        False: "default: each batch a random draw of rows (TRL's default); grouping rows of similar length cuts the "
               "padding a batch computes, not yet measured on the H200",
        True: "chosen: batches of similar-length rows (transformers' LengthGroupedSampler: megabatches of up to 50 "
              "batches sorted by length, seeded by TrainSpec.seed), so a batch pads little; each batch is still a "
              "full batch and every row is seen once an epoch, but a step's rows are no longer a uniform draw",
    },
    "batch_rebalance": {
        False: "default: each step's rows drawn at random into equal micro-batches (H200, 1.5B nf4: batch 8 as 4 "
               "rebalanced micro-batches ran at 0.26x the guarded padded batch of 8, ~0.86 s per micro-batch against "
               "0.95 s for the whole batch; on the CPU 4 plain accumulated micro-batches ran faster than 4 "
               "rebalanced ones, 411.9 against 290.0 tokens/s; docs/training-speed.md, session 18)",
        True: "chosen: each step's rows sorted by length and split into micro-batches of balanced padded cost and "
              "variable size (transformers' BatchRebalanceSampler, seeded by TrainSpec.seed); the same rows per step, "
              "and the loss still the mean over all of them (SFT per token, DPO per pair); a last partial step of fewer "
              "rows than micro-batches repeats rows from the epoch's start (the sampler's padding, warned)",
    },
}


def lever_settings(levers: dict[str, Any]) -> dict[str, Any]:
    """Each lever's setting from a levers record (:meth:`TrainSpec.levers`, ``TrainResult.levers``): its
    ``value`` where it takes a number, else ``on``. What the gate records as ``train_levers`` and what preflight
    compares with it, one rule for both."""
    return {k: v.get("value", v.get("on")) for k, v in levers.items() if isinstance(v, dict)}


class LoraSpec(Spec):
    """A LoRA adapter: rank ``r``, scale ``alpha / r`` (or ``alpha / sqrt(r)`` with rsLoRA), targets.

    The update is ``W x + (alpha / r) * B A x`` with ``B = 0`` at init, so a fresh adapter leaves the
    model's function unchanged (the property the DPO step-0 check and the GPU gate rely on).
    """

    label: ClassVar[str] = "LoraSpec"
    standalone: ClassVar[bool] = True

    r: Annotated[int, Field(ge=1, le=1024)] = 16
    alpha: Annotated[float, Field(gt=0, le=4096)] = 32.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # a YAML list arrives as a list: the one field that is not strict about its container
    targets: Annotated[tuple[str, ...], Field(strict=False)] = ALL_PROJECTIONS
    use_rslora: bool = False

    @field_validator("targets")
    @classmethod
    def _attention_and_mlp_only(cls, targets: tuple[str, ...]) -> tuple[str, ...]:
        if not targets or not all(targets):
            raise Invalid("a non-empty sequence of module names, e.g. " + ",".join(ALL_PROJECTIONS))
        bad = sorted(set(targets) & _FORBIDDEN_TARGETS)
        if bad:
            raise Invalid(f"attention/MLP projections only (not {bad})")
        if len(set(targets)) != len(targets):
            raise Invalid("names without duplicates")
        return targets

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


class TrainSpec(Spec):
    """How to train: optimisation, lengths, checkpoints, early stopping, precision.

    ``max_steps = -1`` trains ``num_epochs`` epochs. ``warmup_ratio`` is a fraction of the total steps.
    ``precision="auto"`` means bf16 mixed precision on a CUDA device with bf16 support, fp32 elsewhere.
    ``early_stopping_patience`` (evaluations without an eval-loss improvement larger than
    ``early_stopping_threshold``) needs eval examples; evaluation runs every ``save_steps`` so the best
    checkpoint can be restored. ``trl_overrides`` passes further ``SFTConfig``/``DPOConfig`` fields
    verbatim (e.g. ``dataloader_num_workers``); it may not shadow a field this spec owns.
    ``padding_free`` (opt-in until the H200 side-by-side in docs/training-speed.md shows it wins at
    equal loss) concatenates each batch into one row with position IDs restarting per example instead of
    padding; for SFT the guard then checks every packed sequence on its own, for DPO the guarded padded batch is
    packed inside the forward and its log-probs returned in the padded layout (:mod:`cleanroom.training.packed_forward`). ``kbit_fp32_upcast`` (4-bit/8-bit models;
    off by default, as in TRL's own trainers: the H200 side-by-side in docs/training-speed.md measured the upcast
    path slower and larger at the same losses) runs peft's ``prepare_model_for_kbit_training``, which casts every
    non-quantized weight (the tied embedding included) to fp32; off keeps them in the loaded dtype (the LoRA
    weights are bf16 either way: TRL casts a quantized model's adapter to bf16, as the QLoRA paper does).
    ``precompute_ref_log_probs`` (DPO only) computes the reference's log-probs of
    every pair once, before training (TRL's option), instead of a reference forward in every step; their
    digest is recorded and the step-0 check compares the policy against those cached values. Padding-free and
    the precompute stay opt-in until the H200 side-by-side shows they win at equal loss;
    :meth:`levers` is their record, with the reason, for the run's provenance. ``micro_batch_budget_gib``
    (off by default) splits the per-device batch into the largest accumulated micro-batches whose peak the memory
    model estimates, with a 10% margin, within that many GiB, the global batch unchanged (:mod:`cleanroom.training.micro_batch`).
    ``batch_rebalance`` (off by default: the H200 side-by-side measured it slower at 1.5B) hands transformers' ``train_sampling_strategy=
    "batch_rebalance"`` the step's rows: each optimizer step still takes ``batch_size x accumulation x ranks``
    shuffled rows, but sorted by length and split into ``ranks x accumulation`` micro-batches of variable size and
    balanced padded cost (``BatchRebalanceSampler``), so short rows stop being padded to the longest of a random
    draw. It only pays with more than one micro-batch a step (accumulation or ranks); with one it merely reorders.
    The loss stays the step's mean: SFT's is token-weighted over the whole step already, DPO's per-micro-batch
    mean is reweighted by its pair count (:mod:`cleanroom.training.rebalance`). DPO takes it in one process only
    (TRL's DPO metrics gather equal-sized micro-batches across ranks). ``group_by_length`` (off by default, not yet
    measured on the H200) hands transformers' ``train_sampling_strategy="group_by_length"`` a seeded
    ``LengthGroupedSampler`` over the rendered rows' lengths: full batches of similar-length rows, so each pads
    little; unlike ``batch_rebalance`` it works with one micro-batch a step, at the price of steps that are no longer
    uniform draws of the data (:mod:`cleanroom.training.rebalance`).
    """

    label: ClassVar[str] = "TrainSpec"
    standalone: ClassVar[bool] = True

    learning_rate: Annotated[float, Field(gt=0, le=1)] = 2e-4
    num_epochs: Annotated[float, Field(gt=0, le=1000)] = 1.0
    max_steps: Annotated[int, Field(ge=-1, json_schema_extra={"not": {"const": 0}}),
                         Allowed("-1 (use num_epochs) or an integer >= 1")] = -1
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 2
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=4096)] = 1
    max_length: Annotated[int, Field(ge=8, le=1 << 20)] = 2048
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.0
    max_grad_norm: Annotated[float, Field(gt=0)] = 1.0
    seed: Seed = 3407
    logging_steps: Annotated[int, Field(ge=1)] = 1
    save_steps: Annotated[int, Field(ge=1)] = 50
    save_total_limit: Annotated[int, Field(ge=1)] | None = 2
    early_stopping_patience: Annotated[int, Field(ge=1)] | None = None
    early_stopping_threshold: Annotated[float, Field(ge=0)] = 0.0
    gradient_checkpointing: bool = True
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    optim: Literal["adamw_torch", "adamw_torch_fused", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit"] = \
        "adamw_torch"
    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"
    padding_free: bool = False
    kbit_fp32_upcast: bool = False
    precompute_ref_log_probs: bool = False
    micro_batch_budget_gib: Annotated[float, Field(gt=0, le=4096)] | None = None
    pad_to_multiple_of: Annotated[int, Field(ge=2, le=65536)] | None = None
    batch_rebalance: bool = False
    group_by_length: bool = False
    trl_overrides: Annotated[dict[str, Any], Field(strict=False)] = Field(default_factory=dict)  # any mapping

    @field_validator("max_steps")
    @classmethod
    def _not_zero_steps(cls, max_steps: int) -> int:
        if max_steps == 0:
            raise Invalid("-1 (use num_epochs) or an integer >= 1")
        return max_steps

    @field_validator("trl_overrides")
    @classmethod
    def _no_shadowed_fields(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        shadowed = sorted(set(overrides) & _OWNED_KEYS)
        if shadowed:
            raise Invalid(f"keys other than {shadowed}, which TrainSpec sets itself (use its own fields)")
        return overrides

    @model_validator(mode="after")
    def _bucketing_is_padding(self) -> TrainSpec:
        if self.padding_free and self.pad_to_multiple_of is not None:
            raise Invalid("null with padding_free (a packed row has no padding to bucket; TRL would pad the row "
                          "and the positions would no longer restart per example)", field="pad_to_multiple_of",
                          value=self.pad_to_multiple_of)
        return self

    @model_validator(mode="after")
    def _rebalance_has_no_fixed_micro_batch(self) -> TrainSpec:
        if self.batch_rebalance and self.micro_batch_budget_gib is not None:
            raise Invalid("false with micro_batch_budget_gib (the budget sizes micro-batches of a fixed row count; a "
                          "rebalanced micro-batch varies and can hold up to batch x accumulation - accumulation + 1 "
                          "rows, 1.8x the planned tokens seen): set one of them", field="batch_rebalance", value=True)
        return self

    @model_validator(mode="after")
    def _one_sampler(self) -> TrainSpec:
        if self.group_by_length and self.batch_rebalance:
            raise Invalid("false with batch_rebalance (each sets the sampler: group_by_length groups similar-length "
                          "rows into batches, batch_rebalance balances micro-batches within a step): set one of them",
                          field="group_by_length", value=True)
        return self

    @property
    def padded_length(self) -> int:
        """The longest row a batch can hold: ``max_length``, rounded up to ``pad_to_multiple_of`` when set (the
        collator truncates to ``max_length`` and then pads to the multiple); what memory estimates size."""
        m = self.pad_to_multiple_of
        return self.max_length if m is None else -(-self.max_length // m) * m

    def use_bf16(self) -> bool:
        """Whether to train in bf16 mixed precision (``auto``: CUDA with bf16 support)."""
        if self.precision != "auto":
            return self.precision == "bf16"
        import torch  # heavy optional: torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())

    def levers(self) -> dict[str, dict[str, Any]]:
        """Each speed lever's setting and what it does, for the run's record (``TrainResult.levers``): ``on``,
        the reason, and ``value`` for a lever that takes a number (``pad_to_multiple_of``) when it is set."""
        out: dict[str, dict[str, Any]] = {}
        for name, reasons in LEVER_REASONS.items():
            value = getattr(self, name)
            on = value is not None and value is not False
            out[name] = {"on": on, "reason": reasons[on]} | ({"value": value} if on and value is not True else {})
        return out

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
            train_sampling_strategy=("batch_rebalance" if self.batch_rebalance
                                     else "group_by_length" if self.group_by_length else "random"),
        )
        if has_eval:
            kwargs.update(eval_strategy="steps", eval_steps=self.save_steps)
        if self.early_stopping_patience is not None:
            kwargs.update(load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)
        kwargs.update(self.trl_overrides)
        return kwargs


__all__ = ["ALL_PROJECTIONS", "LEVER_REASONS", "lever_settings", "DpoBeta", "LoraSpec", "Step0Atol", "TrainSpec"]

"""SFT, merge-with-proof and DPO stages over :mod:`cleanroom.training` (TRL + PEFT).

Each stage reads its examples from the previous stage's JSONL, trains, saves adapters only, and
records the losses, throughput and peak memory. Resume picks up the last checkpoint. Backends:
``peft`` everywhere; ``unsloth`` (SFT and DPO, ``auto`` resolved per stage) only where CUDA and unsloth import
(never a silent swap); the merge uses peft on the saved adapter in both cases.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from cleanroom import distributed, guard, training
from cleanroom.artifacts import atomic_write_bytes, pretty_json, read_records
from cleanroom.backend import dpo_lora_problem, resolve_stage, unsloth_ranks_problem
from cleanroom.config import sft_train_count
from cleanroom.errors import ConfigError, PatchedProcessError
from cleanroom.loader import CleanModelLoader
from cleanroom.pipeline.common import Context, capture, load_model, resolve_model
from cleanroom.pipeline.runlog import StampedLines
from cleanroom.spec import replace
from cleanroom.training import unsloth_backend


def _sft_model(ctx: Context) -> tuple[Any, Any, dict]:
    """The model SFT starts from: the clean loader's (peft backend) or Unsloth's, with LoRA attached.

    ``backend: unsloth`` needs CUDA and an importable unsloth; otherwise it is an error that says why
    (never a silent fall-back to peft). Unsloth rewrites tokenizers, so its output is re-cleaned and
    re-checked (:func:`cleanroom.training.unsloth_backend.load_unsloth`).
    """
    if _stage_backend(ctx, "sft") != "unsloth":
        return load_model(ctx, probe=False)
    path, _ = resolve_model(ctx.spec.model, ctx.run.path)
    model, tokenizer = unsloth_backend.load_unsloth(str(path), max_seq_length=ctx.spec.sft.train.padded_length,
                                    quantization=ctx.spec.model.quantization, lora=ctx.spec.sft.lora,
                                    seed=ctx.spec.seed)
    return model, tokenizer, {"backend": "unsloth", "resolved_model_path": str(path)}


def _stage_backend(ctx: Context, stage: str) -> str:
    """The backend *stage* trains with, resolved as preflight resolved it; an explicit unsloth on several ranks is
    refused here too (``auto`` picks peft there), since each rank would load and resolve on its own."""
    n = distributed.world().world_size
    backend = resolve_stage(ctx.spec, device=ctx.device, stage=stage, world_size=n).backend
    problem = unsloth_ranks_problem((backend,), n)
    if problem:
        raise ConfigError(f"{stage}: {problem}")
    return backend


def train_spec(ctx: Context, train: Any) -> Any:
    """A stage's TrainSpec with the run's top-level ``report_to`` (experiment tracking) applied, and the
    trainer's tqdm bar off under ``--no-progress``."""
    if ctx.spec.report_to != "none":
        train = replace(train, report_to=ctx.spec.report_to)
    if not ctx.progress:
        train = replace(train, trl_overrides={**train.trl_overrides, "disable_tqdm": True})
    return train


@contextlib.contextmanager
def trainer_output_to_log(ctx: Context, stage: str) -> Iterator[None]:
    """Send what the trainer prints on stdout (its ``{'loss': ...}`` dict per logging step) to the run log."""
    if ctx.log_file is None:
        yield
        return
    stream = StampedLines(ctx.log_file, stage)
    with contextlib.redirect_stdout(stream):  # type: ignore[type-var]  # a write/flush text stream
        yield
    stream.flush()


def _split(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    n_eval = len(rows) - sft_train_count(len(rows), fraction)
    if n_eval == 0:
        return rows, []
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    held = set(order[:n_eval].tolist())
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def _sft_rows(ctx: Context) -> tuple[list[dict], list[dict]]:
    """The train and eval rows; the train rows cut to whole global batches (the same steps on any number of
    ranks, :func:`cleanroom.distributed.whole_global_batches`)."""
    rows = [{"prompt": r["prompt"], "completion": r["completion"]}
            for r in read_records(ctx.run.path / "sft_data" / "examples.jsonl")]
    train_rows, eval_rows = _split(rows, ctx.spec.sft.eval_fraction, ctx.spec.seed)
    return _whole_batches(ctx, "sft", train_rows, ctx.spec.sft.train), eval_rows


def _whole_batches(ctx: Context, stage: str, rows: list[dict], train: Any) -> list[dict]:
    """:func:`cleanroom.distributed.whole_global_batches`, with the rows it leaves out said in the run log."""
    kept = distributed.whole_global_batches(rows, train)
    if len(kept) < len(rows):
        ctx.say(f"{stage}: trains on {len(kept)} of {len(rows)} rows: the last {len(rows) - len(kept)} (in file order) "
                f"make no whole global batch of {train.batch_size * train.gradient_accumulation_steps}")
    return kept


def follow_sft(ctx: Context) -> Any:
    """A rank other than 0: the same rows, model and trainer as :func:`run_sft`, without the stage's files."""
    train_rows, eval_rows = _sft_rows(ctx)
    model, tokenizer, _ = _sft_model(ctx)
    return _train_sft(ctx, model, tokenizer, train_rows, eval_rows)


def _train_sft(ctx: Context, model: Any, tokenizer: Any, train_rows: list[dict], eval_rows: list[dict]) -> Any:

    spec = ctx.spec.sft
    with trainer_output_to_log(ctx, "sft"):
        return training.train_sft(model, tokenizer, train_rows, lora=spec.lora, train=train_spec(ctx, spec.train),
                         output_dir=ctx.run.path / ".work" / "sft", eval_examples=eval_rows or None, resume=True,
                         budget=ctx.budget.exhausted)


def run_sft(ctx: Context) -> dict[str, Any]:

    world = distributed.lead(ctx, "sft")  # under a launcher the other ranks run follow_sft beside this
    train_rows, eval_rows = _sft_rows(ctx)
    model, tokenizer, loader_prov = _sft_model(ctx)
    prov = capture(ctx, "sft", loader=loader_prov, extra={"backend": getattr(model, "cleanroom_backend", "peft"),
                                                          "backend_requested": ctx.spec.backend, "distributed": world,
                                                          "n_train": len(train_rows), "n_eval": len(eval_rows)})
    with ctx.run.stage("sft", provenance=prov, inputs=["sft_data/examples.jsonl"]) as st:
        result = _train_sft(ctx, model, tokenizer, train_rows, eval_rows)
        guard.recheck(result.model, tokenizer)
        if result.stopped_reason:
            ctx.budget.check("the end of SFT")  # raises BudgetExceededError: the checkpoint is kept
        st.add_file(result.adapter_dir, name="adapter")  # copied to sft/adapter
        metrics = result.to_dict() | {"adapter_dir": "sft/adapter", "n_train": len(train_rows), "n_eval": len(eval_rows)}
        atomic_write_bytes(st.dir / "metrics.json", pretty_json(metrics))
    return metrics


def _tokenizer_provenance(ctx: Context) -> dict[str, Any]:
    """The clean loader's provenance (version, quantization, revision, file digests) from the tokenizer
    alone: a stage that loads no weights still records which loader and settings its inputs came from."""
    m = ctx.spec.model
    path, gguf = resolve_model(m, ctx.run.path)
    loader = CleanModelLoader(path, quantization=m.quantization, revision=m.revision, gguf_file=gguf,
                              trust_remote_code=m.trust_remote_code, allow_instruct=m.allow_instruct,
                              allow_instruct_reason=m.allow_instruct_reason, probe=False)
    return dict(loader.load_tokenizer()[1], model_dir=str(path), weights_loaded=False)


def run_merge(ctx: Context) -> dict[str, Any]:
    """Prove that generating with the merged model is generating with the adapter: logits agree."""
    from peft import PeftModel  # heavy optional: peft

    if ctx.spec.model.quantization is not None:
        # merging into 4-bit weights re-quantizes; later stages generate through the attached adapter
        report = {"merged": False, "reason": "quantized base: generation uses the attached adapter (no merge)"}
        prov = capture(ctx, "merge", loader=_tokenizer_provenance(ctx), extra=report)
        with ctx.run.stage("merge", provenance=prov, inputs=["sft/adapter"]) as st:
            atomic_write_bytes(st.dir / "equivalence.json", pretty_json(report))
        return report
    model, tokenizer, loader_prov = load_model(ctx, probe=False)
    model = PeftModel.from_pretrained(model, str(ctx.run.path / "sft" / "adapter"))
    probes = [r["prompt"] + r["completion"] for r in read_records(ctx.run.path / "sft_data" / "examples.jsonl")[:4]]
    _, max_diff = training.merge_and_verify(model, tokenizer, probe_texts=probes, atol=ctx.spec.sft.merge_atol)
    report = {"merged": True, "max_abs_logit_diff": max_diff, "atol": ctx.spec.sft.merge_atol, "probes": len(probes)}
    prov = capture(ctx, "merge", loader=loader_prov, extra=report)
    with ctx.run.stage("merge", provenance=prov, inputs=["sft/adapter"]) as st:
        atomic_write_bytes(st.dir / "equivalence.json", pretty_json(report))
    return report


#: set by ``cleanroom run`` in the fresh process it starts after a :class:`PatchedProcessError`, naming the stage
#: that asked for it: a second refusal there is an error, not a loop; the stage's provenance records it
FRESH_PROCESS_ENV = "CLEANROOM_FRESH_PROCESS"


def refuse_patched_process(stage: str) -> None:
    """Refuse a peft stage in a process where Unsloth was imported: it patches transformers for the whole
    process, and on the H200 the DPO stage that followed an Unsloth SFT then compiled for over four minutes
    without finishing step 0 (docs/gpu-gate.md, session 14). The stages before it are on disk, so a new
    process resumes the run without importing Unsloth; ``cleanroom run`` starts that process itself."""
    if "unsloth" in sys.modules:
        raise PatchedProcessError(
            f"{stage}: Unsloth was imported in this process (the SFT stage ran with backend=unsloth) and patches "
            f"transformers for every later stage, which then recompiles per shape (measured: DPO stuck compiling step 0 "
            f"for > 4 min on the H200); the run is saved up to here — run the same `cleanroom run` command again "
            f"with --resume: a new process resumes at {stage} without importing Unsloth", stage=stage,
        )


def _dpo_pairs(ctx: Context) -> list[dict]:

    pairs = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
             for r in read_records(ctx.run.path / "pairs" / "pairs.jsonl")]
    if not pairs:
        raise ConfigError("dpo: pairs/pairs.jsonl holds no pairs")
    return _whole_batches(ctx, "dpo", pairs, ctx.spec.dpo.train)  # as the SFT rows


def _dpo_model(ctx: Context) -> tuple[Any, Any, dict, str]:
    """(model, tokenizer, loader provenance, backend): the SFT policy DPO starts from, on the backend that
    ``backend`` resolves to for DPO (``auto``: per stage, from the gate's check 10).

    peft: the clean loader's base with ``sft/adapter`` (merged into an unquantized base, attached to a quantized
    one), in a process Unsloth has not patched (:func:`refuse_patched_process`). unsloth: Unsloth's base with a
    LoRA shaped like ``sft.lora`` filled with ``sft/adapter``'s weights, proven tensor by tensor
    (:func:`cleanroom.training.unsloth_backend.load_unsloth`); DPO trains it in place, as on a quantized peft base.
    """
    sft_adapter = ctx.run.path / "sft" / "adapter"
    backend = _stage_backend(ctx, "dpo")
    problem = dpo_lora_problem(ctx.spec.sft.lora, ctx.spec.dpo.lora, dpo_backend=backend,
                               quantization=ctx.spec.model.quantization)
    if problem:  # preflight checked it with the choice it made then; auto may resolve otherwise now
        raise ConfigError(f"dpo: {problem}")
    if backend != "unsloth":
        refuse_patched_process("dpo")
        model, tokenizer, prov = load_model(ctx, adapters=(sft_adapter,), probe=False)
        return model, tokenizer, prov, "peft"
    path, _ = resolve_model(ctx.spec.model, ctx.run.path)
    model, tokenizer = unsloth_backend.load_unsloth(str(path), max_seq_length=ctx.spec.dpo.train.padded_length,
                                                    quantization=ctx.spec.model.quantization, lora=ctx.spec.sft.lora,
                                                    seed=ctx.spec.seed, adapter=sft_adapter)
    prov = {"backend": "unsloth", "resolved_model_path": str(path), "adapters": [str(sft_adapter)],
            "adapter_tensors_verified": model.cleanroom_adapter_tensors}
    return model, tokenizer, prov, "unsloth"


def _train_dpo(ctx: Context, model: Any, tokenizer: Any, pairs: list[dict]) -> Any:

    spec = ctx.spec.dpo
    with trainer_output_to_log(ctx, "dpo"):
        return training.train_dpo(model, tokenizer, pairs, lora=spec.lora, train=train_spec(ctx, spec.train), beta=spec.beta,
                         output_dir=ctx.run.path / ".work" / "dpo", resume=True, budget=ctx.budget.exhausted,
                         step0_atol=spec.step0_atol)


def follow_dpo(ctx: Context) -> Any:
    """A rank other than 0: the same pairs, SFT model and trainer as :func:`run_dpo`, without the stage's files."""
    pairs = _dpo_pairs(ctx)
    model, tokenizer, _, _ = _dpo_model(ctx)
    return _train_dpo(ctx, model, tokenizer, pairs)


def run_dpo(ctx: Context) -> dict[str, Any]:
    """DPO against the SFT policy: the SFT adapter merged into the base is both start and reference."""

    world = distributed.lead(ctx, "dpo")  # under a launcher the other ranks run follow_dpo beside this
    spec = ctx.spec.dpo
    pairs = _dpo_pairs(ctx)
    # heavy optional: peft
    from peft import PeftModel

    model, tokenizer, loader_prov, backend = _dpo_model(ctx)
    # merged SFT (unquantized base, peft): DPO attaches a fresh LoRA, so the policy is sft/adapter then dpo/adapter;
    # SFT adapter attached (quantized base, or Unsloth's LoRA filled with it): DPO trains it in place against a
    # frozen copy, so dpo/adapter alone holds SFT+DPO
    in_place = isinstance(model, PeftModel)
    policy = ["dpo/adapter"] if in_place else ["sft/adapter", "dpo/adapter"]
    reference = ("SFT policy (sft/adapter, a frozen copy of the attached adapter)" if in_place
                 else "SFT policy (sft/adapter merged)")
    prov = capture(ctx, "dpo", loader=loader_prov, extra={"beta": spec.beta, "n_pairs": len(pairs),
                                                          "reference": reference,
                                                          "distributed": world,
                                                          "policy_adapters": policy, "backend": backend,
                                                          "fresh_process": os.environ.get(FRESH_PROCESS_ENV) == "dpo"})
    with ctx.run.stage("dpo", provenance=prov, inputs=["pairs/pairs.jsonl", "sft/adapter"]) as st:
        result = _train_dpo(ctx, model, tokenizer, pairs)
        guard.recheck(result.model, tokenizer)
        if result.stopped_reason:
            ctx.budget.check("the end of DPO")
        st.add_file(result.adapter_dir, name="adapter")
        metrics = result.to_dict() | {"adapter_dir": "dpo/adapter", "n_pairs": len(pairs), "beta": spec.beta,
                                      "policy_adapters": policy}
        atomic_write_bytes(st.dir / "metrics.json", pretty_json(metrics))
    return metrics

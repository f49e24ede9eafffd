"""Print cleanroom's guarded training beside plain TRL on the same length-varied data: tokens/s, peak memory, losses.

    python benchmarks/bench_train_side_by_side.py --mode sft-guarded --model qwen2.5-1.5b --quantization nf4 \
        --out results/sft-guarded.json
    python benchmarks/bench_train_side_by_side.py --table results/        # one row per JSON file

Modes (one per process, so each peak-memory figure is its own). The cleanroom modes are ``train_sft`` /
``train_dpo`` as the pipeline calls them, with the TrainSpec levers each names (see :data:`CLEANROOM_MODES`):

    sft-guarded          TrainSpec defaults (no fp32 upcast of the non-quantized weights, padded batches)
    sft-unguarded        the same with the collator's checks (scan, final EOS, loss mask) made pass-throughs
    sft-guarded-upcast   ``kbit_fp32_upcast=True``: peft's prepare_model_for_kbit_training (the default until session 16)
    sft-guarded-padfree  ``padding_free=True`` (the guard checks each packed sequence)
    sft-guarded-fused, sft-guarded-padfree-fused  the same two with ``optim="adamw_torch_fused"``, TRL's default
                         (TrainSpec's is ``adamw_torch``): the one setting in which the padding-free twins differ
                         besides the guard (both give the model the same keys; session 20's CPU probe)
    unsloth-sft          the ``backend: unsloth`` path: ``load_unsloth`` (LoRA attached by Unsloth) + ``train_sft``,
                         guarded; needs CUDA and an importable unsloth (ci/gpu-unsloth.sh's site directory)
    unsloth-sft-bucket   the same with ``pad_to_multiple_of=256``: a few bucketed batch shapes for Unsloth's
                         compiled kernels instead of a new shape (a recompilation) per batch
    unsloth-sft-padfree  the same with ``padding_free=True``: one packed row per batch; Unsloth reads the example
                         boundaries from the restarting position IDs (its varlen attention), no pad computed
    sft-guarded-bucket   ``pad_to_multiple_of=256`` on the peft path (what the bucketing's padding costs there)
    sft-guarded-grouped, unsloth-sft-grouped, dpo-guarded-grouped, unsloth-dpo-grouped  ``group_by_length=True``:
                         batches of similar-length rows (transformers' LengthGroupedSampler, seeded); they train on
                         other batches than the reference, so their per-step losses are not the same-token comparison
    unsloth-dpo          ``train_dpo`` on the model ``load_unsloth`` returns (fresh LoRA attached by Unsloth; TRL,
                         patched by Unsloth on import, keeps a frozen copy of that zero-initialised adapter as the
                         reference), guarded, step 0 checked against ln 2 as on the peft path
    unsloth-dpo-bucket   the same with ``pad_to_multiple_of=256``
    unsloth-dpo-padfree  unsloth-dpo with ``padding_free=True``: each chosen/rejected batch runs as one packed row
                         (cleanroom.training.packed_forward; Unsloth's varlen attention reads the restarts)
    unsloth-dpo-padfree-precompute  the same with ``precompute_ref_log_probs=True`` (the packed reference pass once)
    unsloth-dpo-fused    unsloth-dpo with Unsloth's opt-in ``UNSLOTH_FUSED_PREFERENCE_LOSS=1`` (log-probs scored from the
                         hidden states in row chunks instead of TRL's fused LM head)
    trl-sft              TRL ``SFTTrainer`` defaults + the same LoRA, text data tokenised by TRL
    trl-sft-padfree      the same with ``padding_free=True`` (SDPA, position IDs)
    trl-sft-ids          TRL ``SFTTrainer`` defaults fed cleanroom's token IDs and completion masks (the same tokens
                         as the cleanroom modes, so the loss curves compare the trainers, not two tokenisations)
    dpo-guarded          ``train_dpo`` defaults (base model + fresh LoRA: the reference is the base, live each step)
    dpo-unguarded        the same without the guard
    dpo-guarded-upcast   ``kbit_fp32_upcast=True``
    dpo-guarded-precompute  ``precompute_ref_log_probs=True`` (reference log-probs once, before training)
    dpo-guarded-padfree  ``padding_free=True``: policy and reference forwards packed, log-probs back in the padded
                         layout (cleanroom.training.packed_forward)
    sft-guarded-rebalance   ``batch_rebalance=True`` with --batch split as batch/4 rows x 4 accumulated micro-batches
                         (the global batch unchanged): each step's rows sorted by length into 4 micro-batches of
                         variable size and balanced padded cost (transformers' BatchRebalanceSampler)
    sft-guarded-rebalance-ga1  the same rows per step in one batch of --batch (``batch_rebalance=True``, no
                         accumulation): the same-rows twin whose losses the rebalanced mode must reproduce
    dpo-guarded-rebalance, dpo-guarded-rebalance-ga1  the same two for ``train_dpo``
    sft-guarded-ga4, dpo-guarded-ga4  --batch as 4 accumulated micro-batches, not rebalanced: what the rebalancing
                         itself adds is the -rebalance mode against this one
    trl-dpo              TRL ``DPOTrainer`` defaults + the same LoRA

Every mode counts tokens the same way: the non-pad tokens of each batch the collator hands the model
(``attention_mask.sum()``; a padding-free batch has no pad, so its length), chosen and rejected rows
both for DPO. A step's tokens are the sum over its accumulated micro-batches. Rates use the steps after
``--warmup``: ``tokens/s = sum(tokens) / sum(step seconds)``, each step timed between CUDA synchronisations
by a callback. A padding-free cleanroom mode also checks, after training, that attention stays inside each
packed example: the logits of three examples packed into one row against the same three padded, beside the
same row with positions that do not restart (a leak, the positive control), see :func:`packing_probe`. ``sft-guarded`` also times the guarded
collator against TRL's bare collator on the same batches (the guard's own cost, per batch and as a
share of the median step). ``--model`` is a local directory or a Qwen2.5 architecture name
(``qwen2.5-1.5b``: a random-initialised model built once under ``--cache``). Figures are printed,
never asserted. The data are seeded word sequences of random lengths (prompt 16..--max-prompt words,
completion 16..--max-completion words, log-uniform), not fixed-length copies.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple


class Mode(NamedTuple):
    """A cleanroom mode: its TrainSpec levers, whether the guard runs, and into how many accumulated micro-batches
    ``--batch`` is split (``batch_size = --batch / accumulation``; the global batch is ``--batch`` either way)."""

    levers: dict[str, Any]
    guarded: bool
    accumulation: int = 1


#: cleanroom mode -> Mode; the defaults are TrainSpec's (no fp32 upcast, padded, live reference, random batches).
CLEANROOM_MODES: dict[str, Mode] = {
    "sft-guarded": Mode({}, True),
    "sft-unguarded": Mode({}, False),
    "sft-guarded-upcast": Mode({"kbit_fp32_upcast": True}, True),
    "sft-guarded-padfree": Mode({"padding_free": True}, True),
    "sft-guarded-fused": Mode({"optim": "adamw_torch_fused"}, True),
    "sft-guarded-padfree-fused": Mode({"padding_free": True, "optim": "adamw_torch_fused"}, True),
    "unsloth-sft": Mode({}, True),
    "unsloth-sft-bucket": Mode({"pad_to_multiple_of": 256}, True),
    "unsloth-sft-padfree": Mode({"padding_free": True}, True),
    "sft-guarded-grouped": Mode({"group_by_length": True}, True),
    "unsloth-sft-grouped": Mode({"group_by_length": True}, True),
    "dpo-guarded-grouped": Mode({"group_by_length": True}, True),
    "unsloth-dpo-grouped": Mode({"group_by_length": True}, True),
    "sft-guarded-bucket": Mode({"pad_to_multiple_of": 256}, True),
    "unsloth-dpo": Mode({}, True),
    "unsloth-dpo-bucket": Mode({"pad_to_multiple_of": 256}, True),
    "unsloth-dpo-padfree": Mode({"padding_free": True}, True),
    "unsloth-dpo-padfree-precompute": Mode({"padding_free": True, "precompute_ref_log_probs": True}, True),
    "unsloth-dpo-fused": Mode({}, True),
    "dpo-guarded": Mode({}, True),
    "dpo-unguarded": Mode({}, False),
    "dpo-guarded-upcast": Mode({"kbit_fp32_upcast": True}, True),
    "dpo-guarded-precompute": Mode({"precompute_ref_log_probs": True}, True),
    "dpo-guarded-padfree": Mode({"padding_free": True}, True),
    "sft-guarded-rebalance": Mode({"batch_rebalance": True}, True, accumulation=4),
    "sft-guarded-rebalance-ga1": Mode({"batch_rebalance": True}, True),
    "dpo-guarded-rebalance": Mode({"batch_rebalance": True}, True, accumulation=4),
    "dpo-guarded-rebalance-ga1": Mode({"batch_rebalance": True}, True),
    "sft-guarded-ga4": Mode({}, True, accumulation=4),  # the rebalance modes' micro-batching without rebalancing
    "dpo-guarded-ga4": Mode({}, True, accumulation=4),
}
MODES = (*CLEANROOM_MODES, "trl-sft", "trl-sft-padfree", "trl-sft-ids", "trl-dpo")
WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "river", "blue", "green", "light",
         "stone", "tree", "water", "quick", "slow", "north", "south", "apple", "bread", "music", "paper", "window")


def _length(rng: Any, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _words(rng: Any, n: int) -> str:
    return "".join(" " + rng.choice(WORDS) for _ in range(n))


def sft_examples(n: int, seed: int, max_prompt: int, max_completion: int) -> list[dict[str, str]]:
    """``n`` prompt/completion pairs of log-uniform lengths (words of one token each with their space)."""
    import random

    rng = random.Random(seed)
    return [{"prompt": f"Record {i}:{_words(rng, _length(rng, 16, max_prompt))}\nAnswer:",
             "completion": _words(rng, _length(rng, 16, max_completion))} for i in range(n)]


def dpo_pairs(n: int, seed: int, max_prompt: int, max_completion: int) -> list[dict[str, str]]:
    import random

    rng = random.Random(seed)
    return [{"prompt": f"Record {i}:{_words(rng, _length(rng, 16, max_prompt))}\nAnswer:",
             "chosen": _words(rng, _length(rng, 16, max_completion)),
             "rejected": _words(rng, _length(rng, 16, max_completion))} for i in range(n)]


def batch_tokens(batch: dict[str, Any]) -> int:
    """Non-pad tokens the model processes in ``batch`` (the one count every mode uses)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


class Recorder:
    """Per-step seconds (between CUDA synchronisations), per-batch tokens, losses and the peak memory of training.

    The collator runs once per micro-batch, in the order the Trainer consumes them (a loader may draw one ahead), so
    step ``i``'s tokens are micro-batches ``i*G .. i*G+G-1`` after training began, ``G`` the accumulation steps.
    """

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.start_batch = 0
        self.per_step = 1
        self.step_seconds: list[float] = []
        self.losses: list[float] = []
        self.peak_bytes = 0
        self._t0 = 0.0

    def wrap(self, collate: Any) -> Any:
        def counted(examples: list[dict[str, Any]]) -> dict[str, Any]:
            batch = collate(examples)
            self.tokens.append(batch_tokens(batch))
            return batch

        return counted

    def callback(self) -> Any:
        from transformers import TrainerCallback

        rec = self

        class Timer(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                rec.start_batch = len(rec.tokens)  # batches drawn before training (DPO's step-0 check) don't count
                rec.per_step = args.gradient_accumulation_steps
                _sync()
                if _cuda():
                    import torch

                    torch.cuda.reset_peak_memory_stats()

            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                _sync()
                rec._t0 = time.perf_counter()

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                _sync()
                rec.step_seconds.append(time.perf_counter() - rec._t0)

            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
                if logs and "loss" in logs:
                    rec.losses.append(float(logs["loss"]))

            def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if _cuda():
                    import torch

                    rec.peak_bytes = int(torch.cuda.max_memory_allocated())

        return Timer()

    def summary(self, warmup: int) -> dict[str, Any]:
        steps = len(self.step_seconds)
        w = min(warmup, max(steps - 1, 0))
        g, micro = self.per_step, self.tokens[self.start_batch:]
        tokens = [sum(micro[i * g:(i + 1) * g]) for i in range(steps)]  # every micro-batch of each optimizer step
        secs = sum(self.step_seconds[w:])
        rates = [t / s for t, s in zip(tokens[w:], self.step_seconds[w:], strict=False) if s > 0]
        return {"steps": steps, "warmup_steps": w, "timed_seconds": round(secs, 4),
                "s_per_step": round(secs / max(steps - w, 1), 4),
                "median_step_s": round(statistics.median(self.step_seconds[w:]), 4) if steps else None,
                "median_step_tokens_per_s": round(statistics.median(rates), 1) if rates else 0.0,
                "tokens_timed": sum(tokens[w:]), "tokens_per_s": round(sum(tokens[w:]) / secs, 1) if secs else 0.0,
                # the micro-batches trained on (not DPO's step-0/precompute batches, nor the loader's prefetch)
                "mean_tokens_per_batch": round(sum(micro[:steps * g]) / max(min(len(micro), steps * g), 1), 1),
                "micro_batches_per_step": g,
                "peak_gib": round(self.peak_bytes / 2**30, 3), "losses": [round(x, 4) for x in self.losses]}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _sync() -> None:
    if _cuda():
        import torch

        torch.cuda.synchronize()


def model_dir(name: str, cache: Path) -> Path:
    if Path(name).is_dir():
        return Path(name)
    from cleanroom import fixtures

    if name == "tiny":
        return fixtures.tiny_base_model()
    return fixtures.random_qwen25_model(name, cache / name)


def load(path: Path, quantization: str | None) -> tuple[Any, Any]:
    from cleanroom.loader import CleanModelLoader

    model, tok, _ = CleanModelLoader(path, quantization=quantization, probe=False,
                                     dtype=None if quantization or _cuda() else "float32").load()
    return model, tok


def run_cleanroom(args: argparse.Namespace, path: Path, rec: Recorder) -> dict[str, Any]:
    """train_sft / train_dpo as the pipeline calls them, instrumented through the collator class and a callback."""
    from cleanroom.training import LoraSpec, TrainSpec, train_dpo, train_sft
    from cleanroom.training import collate as collate_mod
    from cleanroom.training.dpo import render_pairs
    from cleanroom.training.sft import render_examples

    levers, guarded, accumulation = CLEANROOM_MODES[args.mode]
    extra: dict[str, Any] = {"levers": levers, "guarded": guarded, "accumulation": accumulation}
    seen: list[Any] = []
    guarded_call = collate_mod._GuardedCollator.__call__

    def call(self: Any, examples: list[dict[str, Any]]) -> dict[str, Any]:
        seen.append(self)
        # unguarded: the TRL collator the guard wraps, bare (no scan, final-EOS, loss-mask or packing check)
        return rec.wrap(lambda ex: guarded_call(self, ex) if guarded else self._inner(ex))(examples)

    collate_mod._GuardedCollator.__call__ = call  # type: ignore[method-assign]
    lora = LoraSpec(r=args.r, alpha=2 * args.r)
    train = TrainSpec(max_steps=args.steps, batch_size=args.batch // accumulation,
                      gradient_accumulation_steps=accumulation, max_length=args.max_length, save_steps=10**6,
                      learning_rate=args.lr, gradient_checkpointing=True, seed=3407,
                      precision="auto" if _cuda() else "fp32", **levers)
    if args.mode.startswith("unsloth-"):  # as pipeline/training.py loads for backend: unsloth (LoRA attached by Unsloth)
        import os

        from cleanroom.training.unsloth_backend import load_unsloth

        if args.mode == "unsloth-dpo-fused":  # read by Unsloth when it rewrites TRL's DPOTrainer (on import)
            os.environ["UNSLOTH_FUSED_PREFERENCE_LOSS"] = "1"
        model, tok = load_unsloth(str(path), max_seq_length=train.padded_length, quantization=args.quantization,
                                  lora=lora, seed=3407)
        import unsloth

        extra["unsloth"] = getattr(unsloth, "__version__", "unknown")
    else:
        model, tok = load(path, args.quantization)
    n = args.steps * args.batch + args.batch
    with tempfile.TemporaryDirectory() as out:
        if "dpo" in args.mode:
            pairs = dpo_pairs(n, 7, args.max_prompt, args.max_completion)
            res = train_dpo(model, tok, pairs, lora=lora, train=train, beta=0.1, output_dir=Path(out),
                            callbacks=[rec.callback()])
            extra.update(step0_loss=res.step0_loss, step0_margin=res.step0_margin,
                         packed_forwards=res.levers["padding_free"].get("packed_forwards"))
            pre = res.levers["precompute_ref_log_probs"]
            if pre["on"]:  # the reference pass, and the one-off rest of building the trainer (TRL's model hash)
                extra.update(ref_precompute_s=pre["seconds"], ref_setup_s=pre["setup_seconds"],
                             ref_logps_sha256=pre["sha256"], ref_precompute_batches=math.ceil(n / args.batch))
            rows = render_pairs(tok, pairs, args.max_length)
            # the probe packs prompt + chosen rows: the attention a packed DPO forward relies on
            probe_rows = [{"input_ids": r["prompt_ids"] + r["chosen_ids"], "prompt_length": len(r["prompt_ids"]),
                           "labels": [-100] * len(r["prompt_ids"]) + r["chosen_ids"]} for r in rows]
        else:
            examples = sft_examples(n, 7, args.max_prompt, args.max_completion)
            train_sft(model, tok, examples, lora=lora, train=train, output_dir=Path(out), callbacks=[rec.callback()])
            rows = probe_rows = render_examples(tok, examples, max_length=args.max_length, name="bench")
    collate_mod._GuardedCollator.__call__ = guarded_call  # type: ignore[method-assign]
    if levers.get("padding_free"):
        extra["packing_probe"] = packing_probe(model, tok, probe_rows)
    if guarded:
        extra["guard"] = time_guard(seen[-1], rows, args, rec)
    return extra


def packing_probe(model: Any, tok: Any, rows: list[dict[str, Any]], n: int = 3) -> dict[str, Any]:
    """Logits of ``n`` examples packed into one row (the guarded collator's ``padding_free`` batch, every key it hands
    the trainer but the labels) against the same examples padded, at each example's own positions. The positive
    control is the packed row with positions 0..T-1 and nothing else, which attends across the examples: its
    difference is what a leak looks like, so ``packed_vs_padded_max_abs`` far below ``leak_control_max_abs`` says the
    model (Unsloth's varlen attention, or transformers' mask from the restarts) kept the examples apart."""
    import torch

    from cleanroom.training.collate import GuardedLanguageModelingCollator

    ex = sorted(rows[:16], key=lambda r: len(r["input_ids"]))[:n]  # the shortest: the probe costs one small forward
    lengths = [len(r["input_ids"]) for r in ex]
    padded = GuardedLanguageModelingCollator(tok, where="probe")(ex)
    packed = GuardedLanguageModelingCollator(tok, where="probe", padding_free=True)(ex)
    device = next(model.parameters()).device

    def logits(batch: dict[str, Any]) -> Any:
        kw = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items() if k not in ("labels", "completion_mask")}
        with torch.no_grad():
            return model(**kw, use_cache=False).logits.float()

    was_training = model.training
    model.eval()
    try:
        pad, pack = logits(padded), logits(packed)
        leak = logits({"input_ids": packed["input_ids"],
                       "position_ids": torch.arange(sum(lengths)).unsqueeze(0)})
    except Exception as exc:  # reported as not checked, never as a pass
        return {"checked": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        model.train(was_training)
    offsets = [sum(lengths[:i]) for i in range(len(lengths))]

    def worst(row: Any) -> float:  # over the examples after the first (the first sees no other example either way)
        spans = enumerate(zip(offsets, lengths, strict=True))
        return max(float((row[0, o:o + n_] - pad[i, :n_]).abs().max()) for i, (o, n_) in spans if i)

    return {"checked": True, "examples": lengths, "packed_vs_padded_max_abs": round(worst(pack), 4),
            "leak_control_max_abs": round(worst(leak), 4), "logit_max_abs": round(float(pad.abs().max()), 3)}


def time_guard(collator: Any, rows: list[dict[str, Any]], args: argparse.Namespace, rec: Recorder) -> dict[str, Any]:
    """The guarded collator against the TRL collator it wraps on the same batches: the guard's own cost."""
    batches = [rows[i:i + args.batch] for i in range(0, len(rows) - args.batch + 1, args.batch)]
    inner = collator._inner

    def per_batch(fn: Any) -> float:
        reps = max(1, 200 // len(batches))
        start = time.perf_counter()
        for _ in range(reps):
            for b in batches:
                fn(b)
        return (time.perf_counter() - start) / (reps * len(batches))

    plain_s, guarded_s = per_batch(inner), per_batch(collator)
    step = rec.summary(args.warmup)["median_step_s"] or float("nan")
    return {"bare_collate_ms": round(plain_s * 1e3, 3), "guarded_collate_ms": round(guarded_s * 1e3, 3),
            "guard_ms_per_batch": round((guarded_s - plain_s) * 1e3, 3),
            "guard_share_of_step_pct": round(100 * (guarded_s - plain_s) / step, 3),
            "steps_per_s_guarded": round(1 / step, 4), "steps_per_s_without_guard": round(1 / (step - guarded_s + plain_s), 4)}


def run_trl(args: argparse.Namespace, path: Path, rec: Recorder) -> dict[str, Any]:
    """TRL's trainers with their defaults: text datasets, TRL's own tokenisation, collator and model preparation."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from cleanroom.training import LoraSpec

    # the same weights, nf4 settings and tokenizer as the cleanroom modes (on plain prompt/completion text the
    # cleaned tokenizer encodes exactly as the shipped one: Qwen2.5 adds no BOS and the data has no control text)
    model, tok = load(path, args.quantization)
    common = dict(max_steps=args.steps, per_device_train_batch_size=args.batch, learning_rate=args.lr,
                  max_length=args.max_length, gradient_checkpointing=True, logging_steps=1, save_strategy="no",
                  report_to=[], seed=3407, data_seed=3407, use_cpu=not _cuda())  # data_seed: as TrainSpec sets it
    if not _cuda():  # the CPU dry run compares like with like: the cleanroom modes train in fp32 there
        common["bf16"] = False
    peft_config = LoraSpec(r=args.r, alpha=2 * args.r).to_peft()
    n = args.steps * args.batch + args.batch
    with tempfile.TemporaryDirectory() as out:
        if args.mode == "trl-dpo":
            data = Dataset.from_list(dpo_pairs(n, 7, args.max_prompt, args.max_completion))
            cfg: Any = DPOConfig(output_dir=out, beta=0.1, **common)
            trainer: Any = DPOTrainer(model=model, args=cfg, train_dataset=data, processing_class=tok,
                                      peft_config=peft_config, callbacks=[rec.callback()])
        else:
            examples = sft_examples(n, 7, args.max_prompt, args.max_completion)
            if args.mode == "trl-sft-ids":  # already tokenised: TRL skips its own tokenisation and masks by the column
                from cleanroom.training.sft import render_examples

                rows = render_examples(tok, examples, max_length=args.max_length, name="bench")
                data = Dataset.from_list([{"input_ids": r["input_ids"],
                                           "completion_mask": [int(x != -100) for x in r["labels"]]} for r in rows])
            else:
                data = Dataset.from_list(examples)
            padfree = args.mode == "trl-sft-padfree"
            if padfree:  # TRL does not truncate padding-free batches; the data already fit max_length
                common["max_length"] = None
            if args.mode == "trl-sft-ids":  # a tokenised dataset's completion_mask is used only when asked for
                common["completion_only_loss"] = True
            cfg = SFTConfig(output_dir=out, padding_free=padfree, **common)
            trainer = SFTTrainer(model=model, args=cfg, train_dataset=data, processing_class=tok,
                                 peft_config=peft_config, callbacks=[rec.callback()])
        trainer.data_collator = rec.wrap(trainer.data_collator)
        trainer.train()
    return {"trl_bf16": cfg.bf16, "trl_optim": str(cfg.optim), "trl_padding_free": getattr(cfg, "padding_free", None)}


def _baseline(mode: str) -> str:
    return "trl-dpo" if "dpo" in mode else "trl-sft"


def _amortised_rate(r: dict[str, Any]) -> float | None:
    """tokens/s with the reference pass's time per batch added to each timed step (None without one): what the
    pass costs over a run of any length. Its one-off set-up (TRL hashes every model tensor for its cache key)
    is ``ref_setup_s`` in the result JSON, not in this rate."""
    if not r.get("ref_precompute_s"):
        return None
    timed_steps = r["steps"] - r["warmup_steps"]
    share = r["ref_precompute_s"] * timed_steps / max(r["ref_precompute_batches"], 1)
    return r["tokens_timed"] / (r["timed_seconds"] + share) if r["timed_seconds"] else None


def _outside_tolerance(losses: list[float], ref: list[float], dpo: bool) -> str:
    """`` (k/n outside)``: the logged steps whose loss is further from the reference's than GPU gate check 10 allows
    Unsloth against peft (verification/test_gpu_gate.py): SFT ``5% of ref + 0.1% of ref's first loss``
    (UNSLOTH_STEP_REL, UNSLOTH_STEP_FLOOR), DPO ``0.02 + 5% of ref`` (DPO_LOSS_ABS)."""
    pairs = list(zip(losses, ref, strict=False))
    if not pairs:
        return ""
    floor = 0.02 if dpo else 0.001 * abs(ref[0])
    k = sum(abs(a - b) > 0.05 * abs(b) + floor for a, b in pairs)
    return f" ({k}/{len(pairs)} outside)"


def _probe_cell(probe: dict[str, Any] | None) -> str:
    if probe is None:
        return ""
    if not probe.get("checked"):
        return f"NOT CHECKED ({probe.get('error', '?')[:60]})"
    return f"{probe['packed_vs_padded_max_abs']} ({probe['leak_control_max_abs']})"


def table(folder: Path) -> str:
    """A markdown table of every result JSON in ``folder``, with each rate relative to its TRL baseline.

    ``guard %``: the guarded collator's extra time per batch over the median step (measured in the same
    process); ``vs unguarded``: the mode's s/step over its ``-unguarded`` twin's, in % (separate processes).
    """
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    by = {(r["model"], r["mode"]): r for r in rows}
    lines = ["| model | mode | s/step | tokens/s | × TRL | median-step tokens/s | × TRL (median) | "
             "tokens/s incl. ref precompute | peak GiB | first → last loss | max abs loss diff (steps outside GPU gate "
             "check 10's tolerance) vs TRL (same tokens "
             "where trl-sft-ids ran; a DPO mode vs dpo-guarded where it ran; a -rebalance mode vs its -ga1 twin) | "
             "guard % of step | vs unguarded % | packed vs padded logits, max abs (leak control) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = by.get((r["model"], _baseline(r["mode"])))
        ratio = r["tokens_per_s"] / ref["tokens_per_s"] if ref and ref.get("tokens_per_s") else float("nan")
        med, ref_med = r.get("median_step_tokens_per_s"), ref.get("median_step_tokens_per_s") if ref else None
        med_ratio = med / ref_med if med and ref_med else float("nan")
        loss = f"{r['losses'][0]:.3f} → {r['losses'][-1]:.3f}" if r.get("losses") else "-"
        # losses against TRL on the same tokens where that run exists (trl-sft tokenises the text its own way); a
        # rebalanced mode against its one-batch twin, which trains on the same rows each step
        # a DPO mode against dpo-guarded (the same guard-rendered tokens, on peft): TRL's DPOTrainer takes text only
        same = by.get((r["model"], "trl-sft-ids" if _baseline(r["mode"]) == "trl-sft" else "dpo-guarded"))
        same = by.get((r["model"], r["mode"] + "-ga1")) or same
        lref = same if same and same.get("losses") and same is not r and r["mode"] not in ("trl-sft", "trl-dpo") else ref
        diff = (max((abs(a - b) for a, b in zip(r["losses"], lref["losses"], strict=False)), default=float("nan"))
                if lref and lref.get("losses") else float("nan"))
        outside = _outside_tolerance(r["losses"], lref["losses"], "dpo" in r["mode"]) if lref and lref.get("losses") else ""
        g = r.get("guard", {}).get("guard_share_of_step_pct", "")
        amortised = _amortised_rate(r)
        twin = by.get((r["model"], r["mode"] + "-unguarded")) or by.get((r["model"], r["mode"].replace("-guarded", "-unguarded")))
        vs = (f"{100 * (r['s_per_step'] / twin['s_per_step'] - 1):+.1f}"
              if twin and twin is not r and twin.get("s_per_step") else "")
        lines.append(f"| {r['model']} | {r['mode']} | {r['s_per_step']} | {r['tokens_per_s']} | {ratio:.2f} | "
                     f"{med if med is not None else ''} | {med_ratio:.2f} | "
                     f"{'' if amortised is None else f'{amortised:.1f}'} | {r['peak_gib']} | {loss} | {diff:.4f}{outside} | "
                     f"{g} | {vs} | {_probe_cell(r.get('packing_probe'))} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=MODES)
    ap.add_argument("--table", type=Path, help="print the table of the result JSONs in this folder and exit")
    ap.add_argument("--model", default="tiny", help="local dir, 'tiny', or a Qwen2.5 arch (qwen2.5-1.5b)")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "cleanroom" / "bench-models")
    ap.add_argument("--quantization", default=None, choices=["nf4", "int8"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--r", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None,
                    help="learning rate; default 2e-4 for SFT (QLoRA's usual) and 5e-6 for DPO (the production "
                         "profile's dpo.train.learning_rate: at 2e-4 DPO losses swing 0.4..6.7 from step to step, so "
                         "no two curves can be compared)")
    ap.add_argument("--max-length", type=int, default=2048, help="the production profile's (qwen2.5-32b.yaml)")
    ap.add_argument("--max-prompt", type=int, default=384, help="longest prompt, in words (~tokens)")
    ap.add_argument("--max-completion", type=int, default=1024, help="longest completion, in words (~tokens)")
    ap.add_argument("--out", type=Path, help="also write the result JSON here")
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return
    if args.mode is None:
        ap.error("--mode or --table is required")
    if args.max_prompt + args.max_completion + 16 > args.max_length:
        ap.error(f"--max-prompt + --max-completion + 16 = {args.max_prompt + args.max_completion + 16} exceeds "
                 f"--max-length {args.max_length}: examples would be refused by the guard")
    if args.mode in CLEANROOM_MODES and args.batch % CLEANROOM_MODES[args.mode].accumulation:
        ap.error(f"--batch {args.batch} is not divisible into {CLEANROOM_MODES[args.mode].accumulation} micro-batches "
                 f"({args.mode}); choose a multiple of it")
    if args.lr is None:
        args.lr = 5e-6 if "dpo" in args.mode else 2e-4
    path = model_dir(args.model, args.cache)
    rec = Recorder()
    extra = run_trl(args, path, rec) if args.mode.startswith("trl") else run_cleanroom(args, path, rec)
    import importlib.metadata as md

    import torch

    versions = {}
    for dist in ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "unsloth"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    result = {"model": path.name if args.model != "tiny" else "tiny", "mode": args.mode, "quantization": args.quantization, "batch": args.batch,
              "versions": versions,
              "r": args.r, "max_length": args.max_length, "learning_rate": args.lr,
              "device": torch.cuda.get_device_name(0) if _cuda() else "cpu", **rec.summary(args.warmup), **extra}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

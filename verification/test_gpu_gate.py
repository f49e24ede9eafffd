"""The GPU deployment gate (pytest -m gpu): ten checks on a CUDA device, recorded into gate-report.json/md.

Default model: a random-initialised Qwen2.5-1.5B (real architecture and vocabulary; no weights can be
downloaded); ``--cleanroom-model PATH`` runs the same checks on the user's local base model. The
assertions are the library's own (``train_sft``, ``train_dpo``'s step-0 check, ``merge_and_verify``,
``guard.recheck``, ``cleanroom.generation.generate``), so the CPU tests and the gate assert the same thing.
Without CUDA the plugin skips every test here with the reason, and no report is written.
"""

from __future__ import annotations

import gc
import math
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cleanroom.training.specs import lever_settings  # light: pydantic only

pytestmark = pytest.mark.gpu

GATE_ARCH = "qwen2.5-1.5b"
MEMORY_ARCHS = ("qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b")
#: the same QLoRA setting for every size in check 8: nf4, r=64 on all projections, gradient checkpointing
MEM_BATCH, MEM_SEQ, MEM_R, MEM_STEPS = 4, 512, 64, 5
MEMORY_TOLERANCE = 0.15
SFT_STEPS, SFT_BATCH, SFT_SEQ = 20, 4, 256
#: the generation workload of check 7 (the production profile's pairs sampling at its batch size), repeated on
#: check 8's largest size for check 9's rates
GEN_PROMPTS, GEN_NEW = 128, 128
PROBE_TEXTS = ("The capital of France is", "def add(a, b):\n    return", "Write three words about the sea.")
GIB = 1024**3


def _cuda() -> Any:
    import torch

    return torch.cuda


def _free() -> None:
    gc.collect()
    _cuda().empty_cache()


def _model_dir(cleanroom_model_path: Path | None, arch: str) -> Path:
    from cleanroom import fixtures

    if cleanroom_model_path is not None:
        return cleanroom_model_path
    return fixtures.random_qwen25_model(arch, fixtures.cache_root() / "gpu-gate" / arch)


def _load(path: Path, *, quantization: str | None = "nf4", probe: bool = False) -> tuple[Any, Any, dict]:
    from cleanroom.loader import CleanModelLoader

    return CleanModelLoader(path, quantization=quantization, dtype="bfloat16", device_map="cuda", probe=probe).load()


def fixed_length_examples(tokenizer: Any, n: int, seq_len: int) -> list[dict[str, str]]:
    """``n`` SFT examples of exactly ``seq_len`` tokens each (prompt + completion + EOS): a full b x s batch.

    The completion repeats one word, so the batch is learnable within a few steps.
    """
    from cleanroom import guard

    out = []
    for i in range(n):
        prompt = f"Record {i}: repeat the word.\nAnswer:"
        k = seq_len - len(guard.encode(tokenizer, prompt)) - 1
        for _ in range(4):
            row = guard.render_example(tokenizer, prompt, " word" * k, max_length=10 * seq_len)
            if len(row["input_ids"]) == seq_len:
                break
            k += seq_len - len(row["input_ids"])
        else:
            raise AssertionError(f"could not build a {seq_len}-token example (got {len(row['input_ids'])})")
        out.append({"prompt": prompt, "completion": " word" * k})
    return out


def _lora() -> Any:
    from cleanroom.training import LoraSpec

    return LoraSpec(r=64, alpha=64.0)


def _sft_spec(**overrides: Any) -> Any:
    from cleanroom.training import TrainSpec

    kwargs = dict(max_steps=SFT_STEPS, batch_size=SFT_BATCH, max_length=SFT_SEQ, learning_rate=5e-4,
                  save_steps=10, save_total_limit=2, gradient_checkpointing=True, precision="bf16")
    kwargs.update(overrides)
    return TrainSpec(**kwargs)


#: check 10's tolerances. Step 1: both adapters start with B = 0, so both models compute the nf4 base's
#: function on the same batch; a gap beyond 2% means Unsloth's kernels or loading changed the model. Later
#: steps: the LoRA A matrices come from different generators (peft's torch RNG vs Unsloth's random_state),
#: Unsloth's fused kernels round differently in bf16, and its loss is a per-micro-batch mean ("num_items_in_batch
#: could not be counted") where TRL normalises by the tokens of the accumulated batch; with one micro-batch
#: per step (accumulation 1, equal-length rows) the two normalisations coincide. So step s must satisfy
#: |u_s - p_s| <= 5% of p_s + 0.1% of p_1: relative while the loss is large, and an absolute floor once it
#: has fallen ~400x (on the H200 the first run's steps 1-7 agreed within 1.5%, and the last steps' 0.027 vs
#: 0.030 are 10% apart but 0.0035 in absolute terms, against a first loss of 12.1).
UNSLOTH_STEP0_TOL, UNSLOTH_STEP_REL, UNSLOTH_STEP_FLOOR = 0.02, 0.05, 0.001
#: tokens in one SFT step of checks 3 and 10 (fixed-length rows)
STEP_TOKENS = SFT_BATCH * SFT_SEQ
#: check 4's DPO run: steps and pairs per step
DPO_STEPS, DPO_BATCH = 6, 4
#: check 10's DPO losses against check 4's, step by step: |u - p| <= DPO_LOSS_ABS + UNSLOTH_STEP_REL * p (both start
#: from the same SFT adapter on the same pairs in the same order, so only kernel rounding separates them)
DPO_LOSS_ABS = 0.02


class _StepTimer:
    """A TrainerCallback recording when each optimizer step ends (the first step carries the compile/warm-up)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                timer.marks = [time.perf_counter()]

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                _cuda().synchronize()
                timer.marks.append(time.perf_counter())

        self.marks: list[float] = []
        self.callback = Callback()

    def figures(self) -> dict[str, float]:
        steps = [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]
        rest = sorted(steps[1:]) or [float("nan")]
        return {"first_step_s": round(steps[0], 2) if steps else float("nan"),
                "median_step_s": round(rest[len(rest) // 2], 4)}


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def gate(cleanroom_model_path: Path | None, gate_recorder: Any) -> Any:
    """The gate model, loaded once: nf4 on the GPU through the clean loader, with the probe on."""
    import importlib.metadata as md

    import torch

    path = _model_dir(cleanroom_model_path, GATE_ARCH)
    props = torch.cuda.get_device_properties(0)
    versions = {}
    for name in ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "missing"
    gate_recorder.set_context(
        device=props.name, device_memory_gib=round(props.total_memory / GIB, 2), cuda=torch.version.cuda,
        model=str(cleanroom_model_path) if cleanroom_model_path else f"random-initialised {GATE_ARCH}",
        versions=versions,
    )
    _free()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    model, tok, prov = _load(path, probe=True)
    seconds = time.perf_counter() - start
    return SimpleNamespace(path=path, model=model, tok=tok, prov=prov, load_seconds=seconds,
                           weights_bytes=torch.cuda.memory_allocated() - before,
                           load_peak_bytes=torch.cuda.max_memory_allocated() - before)


@pytest.fixture(scope="module")
def sft(gate: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """20 QLoRA SFT steps on a fresh nf4 base (checkpoints every 10 steps), with what check 3 compares."""
    import torch

    from cleanroom.training import train_sft
    from cleanroom.training.merge import probe_logits

    model, tok, _ = _load(gate.path)
    frozen = [(n, p, p.detach().to("cpu", copy=True)) for n, p in model.named_parameters()]
    out = tmp_path_factory.mktemp("sft")
    examples = fixed_length_examples(tok, SFT_STEPS * SFT_BATCH, SFT_SEQ)
    timer = _StepTimer()
    # 3 held-out rows: the SFT eval loop (token-weighted, training.sft.token_weighted_eval) runs on the GPU at steps
    # 10 and 20, as it does in the pipeline; evaluation time is inside the whole-run figures, not the median step
    res = train_sft(model, tok, examples, lora=_lora(), train=_sft_spec(), output_dir=out, callbacks=[timer.callback],
                    eval_examples=fixed_length_examples(tok, 3, SFT_SEQ))
    changed = [n for n, p, old in frozen if not torch.equal(p.detach().to("cpu").to(old.dtype), old)]
    trainable = [n for n, p in res.model.named_parameters() if p.requires_grad]
    del frozen
    logits = probe_logits(res.model, tok, PROBE_TEXTS)
    with res.model.disable_adapter():
        base_logits = probe_logits(res.model, tok, PROBE_TEXTS)
    lora_state = {k: v.detach().to("cpu", copy=True) for k, v in res.model.state_dict().items() if "lora_" in k}
    return SimpleNamespace(res=res, tok=tok, out=out, examples=examples, changed=changed, trainable=trainable,
                           logits=logits, base_logits=base_logits, lora_state=lora_state, steps=timer.figures())


# ------------------------------------------------------------------------------------------- checks
def test_1_nf4_load(gate: Any, gate_recorder: Any) -> None:
    from cleanroom import guard

    with gate_recorder.check("1_nf4_load") as c:
        probe = gate.prov.get("probe") or {}
        sentinels = gate.prov.get("sentinels") or {}
        c.figure(load_seconds=round(gate.load_seconds, 2), weights_gib=round(gate.weights_bytes / GIB, 3),
                 load_peak_gib=round(gate.load_peak_bytes / GIB, 3),
                 loaded_in_4bit=bool(getattr(gate.model, "is_loaded_in_4bit", False)),
                 is_instruct=probe.get("is_instruct"), p_eot=probe.get("p_eot"), p_role=probe.get("p_role"),
                 sentinels_checked=sentinels.get("checked"), sentinel_reference=sentinels.get("reference"),
                 sentinel_failures=len(sentinels.get("failures", [])))
        c.require(getattr(gate.model, "is_loaded_in_4bit", False),
                  "the model is not 4-bit: check bitsandbytes imports with CUDA (python -m bitsandbytes)")
        c.require(probe.get("is_instruct") is False, f"the base-model probe did not say base: {probe.get('reasons')}")
        c.require(not sentinels.get("failures") and bool(sentinels.get("checked")),
                  f"sentinel checks: {sentinels.get('failures')}")
        guard.recheck(gate.model, gate.tok)  # raises ContaminationError if anything drifted since the load


def test_2_lora_init_keeps_logits(gate: Any, gate_recorder: Any) -> None:
    from peft import get_peft_model

    from cleanroom.training.merge import probe_logits

    with gate_recorder.check("2_lora_init") as c:
        base = probe_logits(gate.model, gate.tok, PROBE_TEXTS)
        wrapped = get_peft_model(gate.model, _lora().to_peft())
        try:
            fresh = probe_logits(wrapped, gate.tok, PROBE_TEXTS)
        finally:
            gate.model = wrapped.unload()
        diff = max(float((a - b).abs().max()) for a, b in zip(base, fresh, strict=True))
        scale = max(float(a.abs().max()) for a in base)
        c.figure(max_abs_logit_diff=diff, max_abs_logit=scale, tolerance=1e-2)
        c.require(diff <= 1e-2, f"fresh LoRA changed the logits by {diff:.3g}: B must be zero at init (peft init_lora_weights)")


def test_3_sft_steps(sft: Any, gate_recorder: Any) -> None:
    res = sft.res
    with gate_recorder.check("3_sft_steps") as c:
        ratio = res.losses[-1] / res.losses[0] if res.losses and res.losses[0] else float("nan")
        # tokens_per_s: the whole train() call (first step's warm-up and two checkpoint saves inside it);
        # steady_tokens_per_s: one step's tokens over the median step after the first (what a long run sustains)
        c.figure(steps=res.steps, first_loss=res.losses[0], last_loss=res.losses[-1], loss_ratio=ratio,
                 tokens_per_s=round(res.tokens_per_s, 1), s_per_step=round(res.seconds / max(res.steps, 1), 4),
                 steady_tokens_per_s=round(STEP_TOKENS / sft.steps["median_step_s"], 1), **sft.steps,
                 peak_gib=round(res.peak_mem_bytes / GIB, 3), non_lora_changed=len(sft.changed),
                 trainable_params=len(sft.trainable), levers=lever_settings(res.levers))
        c.figure(eval_losses=[round(x, 4) for x in res.eval_losses])
        c.require(res.steps == SFT_STEPS, f"trained {res.steps} steps, expected {SFT_STEPS}")
        c.require(len(res.eval_losses) == SFT_STEPS // 10 and all(math.isfinite(x) for x in res.eval_losses),
                  f"eval losses {res.eval_losses}: expected {SFT_STEPS // 10} finite ones (every save_steps = 10)")
        c.require(all(math.isfinite(x) for x in res.losses), f"non-finite loss in {res.losses}: lower the LR, check bf16")
        c.require(ratio <= 0.95, f"loss did not fall: final/initial = {ratio:.3f} > 0.95 (raise the LR or check labels)")
        c.require(not sft.changed, f"non-LoRA parameters changed: {sft.changed[:5]} (the base must stay frozen)")
        c.require(bool(sft.trainable) and all("lora_" in n for n in sft.trainable),
                  f"trainable parameters that are not LoRA: {[n for n in sft.trainable if 'lora_' not in n][:5]}")


def _dpo_work() -> tuple[list[dict[str, str]], Any]:
    """Checks 4 and 10's DPO run: DPO_STEPS steps of DPO_BATCH pairs whose sides are ~100 tokens, enough work per
    step for a rate that means something (2 steps of 2 twelve-word pairs measured start-up, 73.5 tokens/s, issue 21)."""
    from cleanroom.training import TrainSpec

    pairs = [{"prompt": f"Question {i}: say yes or no, at length.\nAnswer:", "chosen": " yes" * (96 + i % 8),
              "rejected": " no" * (96 + i % 5)} for i in range(DPO_STEPS * DPO_BATCH)]
    # padding-free, as the production profile's DPO trains (its 7B side-by-side: docs/training-speed.md, session 23)
    return pairs, TrainSpec(max_steps=DPO_STEPS, batch_size=DPO_BATCH, max_length=256, learning_rate=5e-6,
                            save_steps=10**6, gradient_checkpointing=True, precision="bf16", padding_free=True)


def test_4_dpo_step0(sft: Any, gate_recorder: Any, tmp_path: Path) -> None:
    from cleanroom.training import train_dpo

    with gate_recorder.check("4_dpo_step0") as c:
        pairs, spec = _dpo_work()
        timer = _StepTimer()
        res = train_dpo(sft.res.model, sft.tok, pairs, lora=_lora(), train=spec, beta=0.1, output_dir=tmp_path,
                        callbacks=[timer.callback])
        steps = timer.figures()
        c.figure(step0_loss=res.step0_loss, ln2=math.log(2), step0_margin=res.step0_margin,
                 dpo_tokens_per_s=round(res.tokens_per_s, 1), dpo_peak_gib=round(res.peak_mem_bytes / GIB, 3),
                 dpo_steady_tokens_per_s=round(res.tokens / max(res.steps, 1) / steps["median_step_s"], 1),
                 dpo_first_step_s=steps["first_step_s"], dpo_median_step_s=steps["median_step_s"],
                 levers=lever_settings(res.levers), losses=[round(x, 5) for x in res.losses],
                 loss_steps=list(res.loss_steps))
        c.require(abs(res.step0_loss - math.log(2)) <= 1e-3 and abs(res.step0_margin) <= 1e-3,
                  "DPO step 0 is not ln 2 / margin 0: the reference is not the SFT policy")
        # step 0 cannot see rows attending to each other (policy and reference would leak alike): compare one batch's
        # per-row log-probs packed and padded, beside the same packed row with positions that do not restart
        forwards = res.levers["padding_free"].get("packed_forwards")
        c.figure(packed_forwards=forwards)  # the policy and the live reference, at step 0 and at each step
        c.require(forwards == 2 * (DPO_STEPS + 1), f"{forwards} packed forwards, expected {2 * (DPO_STEPS + 1)} "
                  "(policy and reference at step 0 and at each step): some DPO forwards ran padded")
        gaps = _packing_gaps(res.model, sft.tok, pairs[:DPO_BATCH], spec.max_length)
        c.figure(packed_vs_padded_logp_nats=gaps["packed_vs_padded"], leak_vs_padded_logp_nats=gaps["leak_vs_padded"])
        c.require(gaps["leak_vs_padded"]["mean"] > 10 * gaps["packed_vs_padded"]["mean"],
                  f"packed DPO rows differ from padded ones by {gaps['packed_vs_padded']} nats, not far below a "
                  f"leaking row's {gaps['leak_vs_padded']}: the packed rows may attend to each other")


def _packing_gaps(model: Any, tok: Any, pairs: list[dict[str, str]], max_length: int) -> dict[str, Any]:
    """packed_forward.compare on the guarded preference batch of ``pairs``, under the bf16 autocast DPO trained in."""
    import torch

    from cleanroom.training import packed_forward
    from cleanroom.training.collate import GuardedPreferenceCollator
    from cleanroom.training.dpo import render_pairs

    base = model.get_base_model()
    device = next(base.parameters()).device
    batch = GuardedPreferenceCollator(tok, max_length=max_length)(render_pairs(tok, pairs, max_length))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        return packed_forward.compare(base, {k: v.to(device) for k, v in batch.items()})


def test_5_save_reload_and_resume(gate: Any, sft: Any, gate_recorder: Any, tmp_path: Path) -> None:
    from peft import PeftModel

    from cleanroom.training import train_sft
    from cleanroom.training.merge import probe_logits
    from cleanroom.training.sft import prepare_kbit

    with gate_recorder.check("5_save_resume") as c:
        base, tok, _ = _load(gate.path)
        base = prepare_kbit(base, _sft_spec())  # the base prepared as check 3's training prepared it
        # keep the saved adapter dtype (PEFT would upcast it to fp32), so both compute in the same precision
        reloaded = PeftModel.from_pretrained(base, str(sft.res.adapter_dir), autocast_adapter_dtype=False)
        # with kbit_fp32_upcast TRL casts the trained model's embeddings/lm_head back to bf16
        # (peft_module_casting_to_bf16) after the upcast: give the reloaded model the trained model's dtypes
        trained = dict(sft.res.model.named_parameters())
        recast = 0
        for n, p in reloaded.named_parameters():
            t = trained.get(n)
            if t is not None and p.dtype.is_floating_point and t.dtype != p.dtype:
                p.data = p.data.to(t.dtype)
                recast += 1
        dtypes = sorted({str(p.dtype) for n, p in reloaded.named_parameters() if "lora_" in n})
        # the trained model's forward still runs under accelerate's bf16 autocast wrapper (bf16=True training
        # patches model.forward); run the reloaded one under the same autocast so only the adapter can differ
        import torch

        with torch.autocast("cuda", dtype=torch.bfloat16):
            again = probe_logits(reloaded, tok, PROBE_TEXTS)
        reload_diff = max(float((a - b).abs().max()) for a, b in zip(sft.logits, again, strict=True))
        scale = max(float(a.abs().max()) for a in sft.logits)
        # where a difference comes from: the adapter tensors, or the base model's state
        saved = {k: v for k, v in reloaded.state_dict().items() if "lora_" in k}
        lora_diff = max((float((saved[k].float().cpu() - v.float()).abs().max()) if k in saved else float("inf")
                         for k, v in sft.lora_state.items()), default=float("nan"))
        with reloaded.disable_adapter(), torch.autocast("cuda", dtype=torch.bfloat16):
            base_again = probe_logits(reloaded, tok, PROBE_TEXTS)
        base_diff = max(float((a - b).abs().max()) for a, b in zip(sft.base_logits, base_again, strict=True))
        del reloaded, base
        _free()

        # a run killed after step 10 leaves checkpoint-10; resume it on a fresh base and compare steps 11..20
        killed = tmp_path / "killed"
        killed.mkdir()
        shutil.copytree(sft.out / "checkpoint-10", killed / "checkpoint-10")
        base, tok, _ = _load(gate.path)
        resumed = train_sft(base, tok, sft.examples, lora=_lora(), train=_sft_spec(), output_dir=killed, resume=True)
        full = dict(zip(sft.res.loss_steps, sft.res.losses, strict=True))
        # the resumed trainer's log history starts with the checkpoint's steps 1..10: compare the new ones
        pairs = [(full[s], v) for s, v in zip(resumed.loss_steps, resumed.losses, strict=True) if s in full and s > 10]
        resume_diff = max((abs(a - b) for a, b in pairs), default=float("nan"))
        c.figure(reload_max_abs_logit_diff=reload_diff, max_abs_logit=scale, adapter_dtypes=", ".join(dtypes),
                 recast_params=recast, adapter_tensor_max_diff=lora_diff, base_only_logit_diff=base_diff,
                 resumed_from=Path(resumed.resumed_from or "").name,
                 resumed_steps=len(pairs), resume_max_abs_loss_diff=resume_diff)
        del resumed, base
        _free()
        c.require(reload_diff <= 1e-3 * max(1.0, scale),
                  f"reloaded adapter logits differ by {reload_diff:.3g} > 1e-3 x max|logit| (adapter save/load)")
        c.require(len(pairs) == SFT_STEPS - 10, f"resume logged {len(pairs)} of the {SFT_STEPS - 10} remaining steps")
        c.require(resume_diff <= 1e-3, f"resumed losses differ by {resume_diff:.3g} > 1e-3 (optimizer/RNG state not restored)")


def test_6_merge(gate: Any, sft: Any, gate_recorder: Any) -> None:
    from peft import PeftModel

    from cleanroom.errors import GateError
    from cleanroom.loader import CleanModelLoader
    from cleanroom.training import merge_and_verify

    with gate_recorder.check("6_merge") as c:
        # fp32 base: the merge itself must be exact (merge_atol 1e-2, the pipeline's default) ...
        base, tok, _ = CleanModelLoader(gate.path, dtype="float32", device_map="cuda", probe=False).load()
        model = PeftModel.from_pretrained(base, str(sft.res.adapter_dir))
        merged, diff = merge_and_verify(model, tok, probe_texts=list(PROBE_TEXTS), atol=1e-2)
        c.figure(fp32_max_abs_logit_diff=diff, atol=1e-2)
        del merged, model, base
        _free()
        # ... and a bf16 merge (what a bf16 export does) rounds W + s B A to bf16: recorded, not required
        base, tok, _ = _load(gate.path, quantization=None)
        model = PeftModel.from_pretrained(base, str(sft.res.adapter_dir))
        try:
            _, bf16_diff = merge_and_verify(model, tok, probe_texts=list(PROBE_TEXTS), atol=1e9)
        except GateError as exc:  # only NaN gets here with atol 1e9
            bf16_diff = str(exc)
        c.figure(bf16_max_abs_logit_diff=bf16_diff)
        del model, base
        _free()


def generation_workload() -> dict[str, Any]:
    """The production profile's preference sampling (the largest generation phase): its temperature, top_p,
    batch size and engine, on GEN_PROMPTS prompts of GEN_NEW new tokens."""
    from cleanroom.config import load_config

    g = load_config("qwen2.5-32b").pairs.generation
    return {"temperature": g.temperature, "top_p": g.top_p, "batch_size": g.batch_size, "engine": g.engine}


def measure_generation(model: Any, tok: Any, *, engine: str | None = None) -> tuple[Any, float, float]:
    """Batched sampled generation through :func:`cleanroom.generation.generate`: ``(result, seconds, warmup_s)``.

    One warm-up batch on the same shapes first (compilation and graph capture, paid once per stage in a real
    run, reported apart), then the timed run. tokens/s counts ``generated_counts``.
    """
    from cleanroom.generation import generate

    work = generation_workload() | ({"engine": engine} if engine else {})
    prompts = [f"Instruction {i}: write a short paragraph about the number {i}.\nResponse:" for i in range(GEN_PROMPTS)]
    _cuda().synchronize()
    start = time.perf_counter()
    generate(model, tok, prompts[:work["batch_size"]], max_new_tokens=GEN_NEW, seeds=0, **work)
    _cuda().synchronize()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    res = generate(model, tok, prompts, max_new_tokens=GEN_NEW, seeds=0, **work)
    _cuda().synchronize()
    return res, time.perf_counter() - start, warm


def test_7_generation(gate: Any, gate_recorder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cleanroom import guard

    scanned: list[str] = []
    real_scan = guard.scan_ids

    def counting_scan(*args: Any, **kwargs: Any) -> Any:
        scanned.append(str(kwargs.get("where")))
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(guard, "scan_ids", counting_scan)
    with gate_recorder.check("7_generation") as c:
        work = generation_workload()
        plain, plain_s, _ = measure_generation(gate.model, gate.tok, engine="hf")
        scanned.clear()
        res, seconds, warm = measure_generation(gate.model, gate.tok)
        batches = [w for w in scanned if w.startswith("generation batch")]
        outputs = [w for w in scanned if w.startswith("generation output")]
        tps, plain_tps = sum(res.generated_counts) / seconds, sum(plain.generated_counts) / plain_s
        expected = 1 + math.ceil(GEN_PROMPTS / work["batch_size"])  # the warm-up batch, then the timed ones
        c.figure(prompts=GEN_PROMPTS, max_new_tokens=GEN_NEW, **work, engine_resolved=res.engine,
                 engine_reason=res.engine_reason, new_tokens=sum(res.generated_counts), seconds=round(seconds, 2),
                 warmup_s=round(warm, 2), gen_tokens_per_s=round(tps, 1), plain_generate_tokens_per_s=round(plain_tps, 1),
                 ratio_to_plain=round(tps / plain_tps, 2), guarded_batches=len(batches), guarded_outputs=len(outputs))
        c.require(len(res.texts) == GEN_PROMPTS, f"{len(res.texts)} outputs for {GEN_PROMPTS} prompts")
        c.require(len(batches) == expected and len(outputs) == expected,
                  f"guard.scan_ids saw {len(batches)} generation batches and {len(outputs)} outputs of {expected}")
        c.require(tps > 0, "no tokens generated")
    gate_recorder.set_context(gen_tokens_per_s=tps)
    from cleanroom.generation import release_dense

    release_dense(gate.model)  # the dense decoding copies must not stay in the memory the later checks measure
    _free()


def measure_qlora_peak(arch: str, *, batch: int, seq: int, steps: int, out: Path,
                       measure_gen: bool = False, kbit_fp32_upcast: bool = False) -> dict[str, Any]:
    """Peak ``max_memory_allocated`` of a few QLoRA SFT steps on a random ``arch`` (memory held before excluded);
    ``kbit_fp32_upcast`` as the TrainSpec lever (off: TrainSpec's default)."""
    import torch

    from cleanroom import fixtures
    from cleanroom.training import LoraSpec, TrainSpec, train_sft

    path = fixtures.random_qwen25_model(arch, fixtures.cache_root() / "gpu-gate" / arch)
    _free()
    before = torch.cuda.memory_allocated()
    model, tok, _ = _load(path)
    loaded = torch.cuda.memory_allocated() - before
    gen_tps = None
    if measure_gen:  # before training: the bare nf4 base, as in check 7
        from cleanroom.generation import release_dense

        gen, gen_seconds, _ = measure_generation(model, tok)
        gen_tps = sum(gen.generated_counts) / gen_seconds
        del gen
        # the static engine's dense bf16 decoding copies (15 GB at 7B) would otherwise count in the training peak:
        # session 16's gate measured 19.3 GiB against an estimate of 7.5 for that reason
        release_dense(model)
    _free()
    spec = TrainSpec(max_steps=steps, batch_size=batch, max_length=seq, save_steps=10**6, gradient_checkpointing=True,
                     precision="bf16", learning_rate=1e-4, kbit_fp32_upcast=kbit_fp32_upcast)
    res = train_sft(model, tok, fixed_length_examples(tok, steps * batch, seq), lora=LoraSpec(r=MEM_R, alpha=MEM_R),
                    train=spec, output_dir=out)
    figures = {"weights_bytes": loaded, "peak_bytes": res.peak_mem_bytes - before,
               "s_per_step": res.seconds / max(res.steps, 1), "tokens_per_s": res.tokens_per_s,
               "gen_tokens_per_s": gen_tps, "levers": lever_settings(res.levers)}
    del res, model, tok
    _free()
    return figures


def test_8_memory_model(gate: Any, gate_recorder: Any, tmp_path: Path) -> None:
    from cleanroom import memory
    from cleanroom.config import load_config
    from cleanroom.memory import arch_for
    from cleanroom.training import ALL_PROJECTIONS

    rates: dict[str, dict[str, float]] = {}
    with gate_recorder.check("8_memory_model") as c:
        rows = {}
        for arch in MEMORY_ARCHS:
            # generation only on the largest size: check 9 extrapolates from it (compiling each size costs minutes)
            m = measure_qlora_peak(arch, batch=MEM_BATCH, seq=MEM_SEQ, steps=MEM_STEPS, out=tmp_path / arch,
                                   measure_gen=arch == MEMORY_ARCHS[-1])
            est = memory.estimate_peak_memory(arch_for(arch), quantization="nf4", lora_r=MEM_R,
                                              lora_targets=ALL_PROJECTIONS, batch_size=MEM_BATCH, seq_len=MEM_SEQ,
                                              gradient_checkpointing=True)
            err = est.allocated_bytes / m["peak_bytes"] - 1
            rows[arch] = {"measured_gib": round(m["peak_bytes"] / GIB, 3), "estimated_gib": round(est.allocated_bytes / GIB, 3),
                          "error_pct": round(100 * err, 1), "measured_weights_gib": round(m["weights_bytes"] / GIB, 3),
                          "estimated_weights_gib": round(est.parts["weights"] / GIB, 3),
                          "s_per_step": round(m["s_per_step"], 3),
                          "train_tokens_per_s": round(m["tokens_per_s"], 1),
                          "gen_tokens_per_s": m["gen_tokens_per_s"] and round(m["gen_tokens_per_s"], 1)}
            rates[arch] = {"params_b": sum(memory.count_params(arch_for(arch)).values()) / 1e9,
                           "train_tokens_per_s": m["tokens_per_s"], "gen_tokens_per_s": m["gen_tokens_per_s"],
                           "levers": m["levers"]}
            c.require(abs(err) <= MEMORY_TOLERANCE, f"{arch}: estimate off by {100 * err:+.1f}% (> ±15%): recalibrate "
                      "cleanroom.memory constants against benchmarks/bench_memory_model.py")
        spec = load_config("qwen2.5-32b")
        budget = int(spec.budget.gpu_memory_gb * 1e9)
        t = spec.sft.train
        kwargs = dict(quantization="nf4", lora_r=spec.sft.lora.r, lora_targets=spec.sft.lora.targets,
                      seq_len=t.max_length, gradient_checkpointing=t.gradient_checkpointing)
        est32 = memory.estimate_peak_memory("Qwen2.5-32B", batch_size=t.batch_size, **kwargs)
        max_b = memory.max_batch_that_fits("Qwen2.5-32B", budget, **kwargs)
        c.figure(batch=MEM_BATCH, seq=MEM_SEQ, lora_r=MEM_R, sizes=rows,
                 qwen32b_batch=t.batch_size, qwen32b_seq=t.max_length,
                 qwen32b_total_gib=round(est32.total_bytes / GIB, 2), budget_gib=round(budget / GIB, 2),
                 qwen32b_fits=est32.total_bytes <= budget, qwen32b_max_batch=max_b,
                 qwen32b_parts_gib={k: round(v / GIB, 2) for k, v in est32.parts.items()})
        c.require(est32.total_bytes <= budget, f"Qwen2.5-32B nf4 r={spec.sft.lora.r} at batch {t.batch_size} x "
                  f"{t.max_length} needs {est32.total_bytes / GIB:.1f} GiB > {budget / GIB:.1f}: use batch {max_b} "
                  "with more gradient accumulation")
    gate_recorder.set_context(calibration_rates=rates)


def rate_source(candidates: dict[str, dict[str, float]]) -> tuple[str, dict[str, float]]:
    """The measured model whose rates check 9 extrapolates from: the largest one with both rates.

    Small architectures are launch- and overhead-bound on a large GPU (0.5B, 1.5B and 7B trained at
    nearly the same seconds per step here), so scaling their tokens/s by the parameter ratio overstates
    a 32B run's hours by several times; the closer the measured size, the smaller that error. On the
    user's real model (``--cleanroom-model``) the gate model is the production size and the ratio is 1.
    """
    usable = {k: v for k, v in candidates.items() if v.get("train_tokens_per_s") and v.get("gen_tokens_per_s")}
    if not usable:
        raise AssertionError("no model with measured training and generation rates (checks 3, 7 and 8 feed check 9)")
    name = max(usable, key=lambda k: usable[k]["params_b"])
    return name, usable[name]


def test_9_cost(gate: Any, sft: Any, gate_recorder: Any) -> None:
    from cleanroom import memory
    from cleanroom.config import load_config
    from cleanroom.pipeline.preflight import project_stage1

    with gate_recorder.check("9_cost") as c:
        spec = load_config("qwen2.5-32b")
        params_32 = sum(memory.count_params("Qwen2.5-32B").values()) / 1e9
        params_gate = sum(memory.count_params(gate.model.config.to_dict()).values()) / 1e9
        gen_tps = gate_recorder.context.get("gen_tokens_per_s")
        c.require(bool(gen_tps), "check 7 (generation throughput) did not run: its tokens/s feed this projection")
        candidates = dict(gate_recorder.context.get("calibration_rates") or {})
        candidates["gate model"] = {"params_b": params_gate, "train_tokens_per_s": sft.res.tokens_per_s,
                                    "gen_tokens_per_s": gen_tps or 0.0, "levers": lever_settings(sft.res.levers)}
        source, r = rate_source(candidates)
        ratio = r["params_b"] / params_32
        measured = {"train_tokens_per_s": r["train_tokens_per_s"] * ratio, "gen_tokens_per_s": r["gen_tokens_per_s"] * ratio}
        proj = project_stage1(spec, device="cuda", params_b=params_32, measured=measured)
        # the same projection from the gate model alone, for comparison (the most pessimistic extrapolation)
        g = params_gate / params_32
        from_gate = project_stage1(spec, device="cuda", params_b=params_32,
                                   measured={"train_tokens_per_s": sft.res.tokens_per_s * g,
                                             "gen_tokens_per_s": (gen_tps or 0) * g})
        c.figure(rates_from=f"{source} ({r['params_b']:.2f}B)", measured_params_b=round(r["params_b"], 4),
                 measured_train_tokens_per_s=round(r["train_tokens_per_s"], 1),
                 measured_gen_tokens_per_s=round(r["gen_tokens_per_s"], 1),
                 train_levers=r.get("levers"),  # the training path the rate was measured on (preflight compares)
                 scaling=f"x {r['params_b']:.3f}B / {params_32:.3f}B (tokens/s taken as inversely proportional to params)",
                 hours=proj["hours"], cost_usd=proj["cost_usd"], price_per_hour=proj["price_per_hour"],
                 max_cost_usd=spec.budget.max_cost_usd, phase_hours=proj["phase_hours"],
                 cost_usd_if_scaled_from_gate_model=from_gate["cost_usd"])
        limit = spec.budget.max_cost_usd
        c.require(limit is None or proj["cost_usd"] <= limit,
                  f"projected ${proj['cost_usd']} > budget.max_cost_usd ${limit}: cut data.n_sft/pairs.n_instructions "
                  "or the epochs, or raise the budget")


def _saved_tokenizer_diff(saved: Path, clean: Path) -> list[str]:
    """Tokenizer/config files saved beside one adapter that are missing from, or differ from, the clean run's."""
    import json

    names = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
             "chat_template.jinja", "chat_template.json", "config.json")
    diff = []
    for name in names:
        mine, ref = saved / name, clean / name
        if not mine.exists():
            continue
        if not ref.exists():
            diff.append(f"{name} (only beside the unsloth adapter)")
        elif name.endswith(".json"):
            a, b = json.loads(mine.read_text()), json.loads(ref.read_text())
            if a != b:
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) if isinstance(a, dict) and isinstance(b, dict) else []
                diff.append(f"{name} ({', '.join(keys)})" if keys else name)
        elif mine.read_bytes() != ref.read_bytes():
            diff.append(name)
    return diff


def _batch_loss(model: Any, rows: list[dict[str, list[int]]]) -> float:
    """Mean token cross-entropy of ``model`` on guard-rendered rows (labels -100 on the prompt)."""
    import torch

    ids = torch.tensor([r["input_ids"] for r in rows], device="cuda")
    labels = torch.tensor([r["labels"] for r in rows], device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        return float(model(input_ids=ids, labels=labels).loss)


def test_10_unsloth(gate: Any, sft: Any, gate_recorder: Any, tmp_path: Path) -> None:
    """Unsloth against peft on what a user picks a backend for, side by side on the same data.

    1. One batch, fresh adapters (B = 0): the same loss within 2% (the base's function is unchanged).
    2. The same 20 SFT steps as check 3 (same examples, LoRA, schedule): the loss trajectory within 10% per
       step of check 3's, tokens/s, peak memory, first-step (compile/warm-up) time and load time.
    3. DPO as the pipeline runs it on Unsloth: check 3's SFT adapter loaded into Unsloth's LoRA, check 4's pairs
       and spec; step 0 is ln 2 with margin 0, the losses follow check 4's step by step, and its steady tokens/s
       beside check 4's (``unsloth_dpo_faster``, what ``backend: auto`` reads for the DPO stage; None where check 4
       did not pass in this session, so nothing was compared).
    4. The guard: the tokenizer Unsloth returns encodes as the clean loader's; after training the model and
       tokenizer still pass ``guard.recheck`` and the saved adapter directory carries no tokenizer or
       config change (Unsloth rewrites pad tokens and re-saves tokenizers).
    ``unsloth_faster`` (steady-state tokens/s above peft's, at parity) is what ``backend: auto`` reads from this
    report (:func:`cleanroom.backend.gate_evidence`); ``break_even_steps`` is how many steps repay its warm-up.
    """

    from peft import get_peft_model

    from cleanroom import guard
    from cleanroom.training import train_dpo, train_sft
    from cleanroom.training.unsloth_backend import load_unsloth, unsloth_available

    with gate_recorder.check("10_unsloth") as c:
        reason = unsloth_available()
        if reason is not None:
            pytest.skip(f"unsloth parity not checked: {reason}")
        examples = fixed_length_examples(gate.tok, SFT_BATCH, SFT_SEQ)
        rows = [guard.render_example(gate.tok, e["prompt"], e["completion"], max_length=SFT_SEQ) for e in examples]
        peft_model = get_peft_model(gate.model, _lora().to_peft())
        try:
            peft_loss = _batch_loss(peft_model, rows)
        finally:
            gate.model = peft_model.unload()
        _free()
        start = time.perf_counter()
        u_model, u_tok = load_unsloth(str(gate.path), max_seq_length=SFT_SEQ, quantization="nf4", lora=_lora())
        load_s = time.perf_counter() - start
        guard.recheck(u_model, u_tok)
        same_ids = all(guard.encode(u_tok, e["prompt"]) == guard.encode(gate.tok, e["prompt"]) for e in examples)
        u_loss = _batch_loss(u_model, rows)
        rel = abs(u_loss - peft_loss) / max(abs(peft_loss), 1e-8)
        c.figure(peft_loss=peft_loss, unsloth_loss=u_loss, relative_diff=rel, tolerance=UNSLOTH_STEP0_TOL,
                 same_token_ids=same_ids, unsloth_load_s=round(load_s, 2))
        c.require(same_ids, "Unsloth's tokenizer encodes the prompts differently from the clean loader's")
        c.require(rel <= UNSLOTH_STEP0_TOL, f"Unsloth and peft losses differ by {rel:.2%} on the same batch; use backend=peft")

        _cuda().reset_peak_memory_stats()
        timer = _StepTimer()
        res = train_sft(u_model, u_tok, sft.examples, lora=_lora(), train=_sft_spec(), output_dir=tmp_path / "sft",
                        callbacks=[timer.callback])
        guard.recheck(res.model, u_tok)
        ref = dict(zip(sft.res.loss_steps, sft.res.losses, strict=True))
        p1 = abs(sft.res.losses[0]) if sft.res.losses else 1.0
        off = {s: abs(x - ref[s]) for s, x in zip(res.loss_steps, res.losses, strict=True) if s in ref}
        bad = {s: round(d, 4) for s, d in off.items() if d > UNSLOTH_STEP_REL * abs(ref[s]) + UNSLOTH_STEP_FLOOR * p1}
        u_steps, p_steps = timer.figures(), sft.steps
        u_steady = STEP_TOKENS / u_steps["median_step_s"]
        p_steady = STEP_TOKENS / p_steps["median_step_s"]
        gain = p_steps["median_step_s"] - u_steps["median_step_s"]
        extra = u_steps["first_step_s"] - p_steps["first_step_s"]
        tokenizer_diff = _saved_tokenizer_diff(res.adapter_dir, sft.res.adapter_dir)
        faster = u_steady > p_steady and not bad and len(off) == SFT_STEPS and not tokenizer_diff
        c.figure(steps=res.steps, unsloth_losses=[round(x, 4) for x in res.losses],
                 peft_losses=[round(x, 4) for x in sft.res.losses], steps_out_of_tolerance=bad,
                 step_tolerance=f"|u-p| <= {UNSLOTH_STEP_REL:.0%} of p + {UNSLOTH_STEP_FLOOR:.1%} of p_1 ({p1:.3f})",
                 unsloth_steady_tokens_per_s=round(u_steady, 1), peft_steady_tokens_per_s=round(p_steady, 1),
                 unsloth_run_tokens_per_s=round(SFT_STEPS * STEP_TOKENS / res.seconds, 1),
                 peft_run_tokens_per_s=round(SFT_STEPS * STEP_TOKENS / sft.res.seconds, 1),
                 steady_speed_ratio=round(u_steady / p_steady, 3),
                 unsloth_peak_gib=round(res.peak_mem_bytes / GIB, 3), peft_peak_gib=round(sft.res.peak_mem_bytes / GIB, 3),
                 unsloth_first_step_s=u_steps["first_step_s"], peft_first_step_s=p_steps["first_step_s"],
                 unsloth_median_step_s=u_steps["median_step_s"], peft_median_step_s=p_steps["median_step_s"],
                 break_even_steps=round(extra / gain, 1) if gain > 0 else None,
                 saved_tokenizer_differs=tokenizer_diff, unsloth_faster=faster)
        c.require(res.steps == SFT_STEPS, f"Unsloth trained {res.steps} steps, expected {SFT_STEPS}")
        c.require(len(off) == SFT_STEPS, f"only {len(off)} of {SFT_STEPS} steps were logged by both backends, so the "
                  "loss trajectories were not compared; check logging_steps of both runs")
        c.require(not bad, f"Unsloth's SFT losses leave peft's beyond the tolerance at steps {bad}; use backend=peft")
        c.require(not tokenizer_diff, f"Unsloth saved a tokenizer that differs from peft's clean one: {tokenizer_diff}")

        del u_model, res
        _free()

        # DPO as the pipeline runs it on unsloth: Unsloth's base with its LoRA filled from check 3's saved SFT
        # adapter (proven tensor by tensor), on check 4's pairs and spec, so its rate compares with check 4's
        start = time.perf_counter()
        d_model, d_tok = load_unsloth(str(gate.path), max_seq_length=256, quantization="nf4", lora=_lora(),
                                      adapter=sft.res.adapter_dir)
        pairs, spec = _dpo_work()
        timer = _StepTimer()
        _cuda().reset_peak_memory_stats()
        dpo = train_dpo(d_model, d_tok, pairs, lora=_lora(), train=spec, beta=0.1, output_dir=tmp_path / "dpo",
                        callbacks=[timer.callback])
        d_steps = timer.figures()
        u_dpo = dpo.tokens / max(dpo.steps, 1) / d_steps["median_step_s"]
        peft_dpo = gate_recorder.results.get("4_dpo_step0")
        p_fig = peft_dpo.figures if peft_dpo and peft_dpo.status == "passed" else {}
        p_dpo = p_fig.get("dpo_steady_tokens_per_s")
        step0_ok = abs(dpo.step0_loss - math.log(2)) <= 1e-3 and abs(dpo.step0_margin) <= 1e-3
        # the same start, pairs and order as check 4: the losses must follow peft's step by step (a reference that
        # drifts with the policy, or another loss, would part from them while step 0 still reads ln 2)
        p_loss = dict(zip(p_fig.get("loss_steps", []), p_fig.get("losses", []), strict=False))
        d_off = {s: round(abs(x - p_loss[s]), 5) for s, x in zip(dpo.loss_steps, dpo.losses, strict=True) if s in p_loss}
        d_bad = {s: d for s, d in d_off.items() if d > DPO_LOSS_ABS + UNSLOTH_STEP_REL * abs(p_loss[s])}
        compared = bool(p_dpo) and len(d_off) == DPO_STEPS
        # the comparison tells a frozen reference from a drifting one only where peft's loss left ln 2 by more than
        # the tolerance (a reference that follows the policy holds the loss at ln 2)
        moved = max((abs(x - math.log(2)) for x in p_loss.values()), default=0.0)
        c.figure(unsloth_dpo_losses=[round(x, 5) for x in dpo.losses], unsloth_dpo_steps_out_of_tolerance=d_bad,
                 unsloth_dpo_step_tolerance=f"|u-p| <= {DPO_LOSS_ABS} + {UNSLOTH_STEP_REL:.0%} of p",
                 unsloth_dpo_compared_with_check_4=compared, peft_dpo_loss_moved_from_ln2=round(moved, 5),
                 unsloth_dpo_parity_tells_reference_drift=moved > DPO_LOSS_ABS + UNSLOTH_STEP_REL * math.log(2))
        c.require(not p_fig or len(d_off) == DPO_STEPS,
                  f"only {len(d_off)} of {DPO_STEPS} DPO steps were logged by both check 4 and check 10, so the DPO "
                  "losses were not compared; check logging_steps of both runs")
        c.figure(unsloth_dpo_step0_loss=dpo.step0_loss, unsloth_dpo_step0_margin=dpo.step0_margin,
                 unsloth_dpo_steady_tokens_per_s=round(u_dpo, 1), peft_dpo_steady_tokens_per_s=p_dpo,
                 unsloth_dpo_speed_ratio=round(u_dpo / p_dpo, 3) if p_dpo else None,
                 unsloth_dpo_first_step_s=d_steps["first_step_s"], unsloth_dpo_median_step_s=d_steps["median_step_s"],
                 unsloth_dpo_peak_gib=round(dpo.peak_mem_bytes / GIB, 3),
                 unsloth_dpo_s=round(time.perf_counter() - start, 2),
                 # None where check 4 did not pass here with its losses: not compared (backend auto keeps DPO on peft)
                 unsloth_dpo_faster=(u_dpo > p_dpo and step0_ok and not d_bad) if compared else None)
        c.require(step0_ok, "DPO from the SFT adapter loaded into Unsloth's LoRA: step 0 is not ln 2 / margin 0")
        c.require(not d_bad, f"DPO on Unsloth: losses leave check 4's (peft) beyond the tolerance at steps {d_bad}; "
                  "use backend=peft for DPO")
        del d_model, dpo
        _free()

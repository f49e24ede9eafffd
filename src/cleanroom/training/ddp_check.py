"""The data-parallel equivalence run: SFT then DPO on the tiny base, in one process or under a launcher.

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m cleanroom.training.ddp_check OUT
    accelerate launch --multi_gpu --num_processes 2 -m cleanroom.training.ddp_check OUT --model DIR  # 2 GPUs
    python -m cleanroom.training.ddp_check OUT          # the one-process reference

(:func:`launch` builds those lines; accelerate 1.16's ``--cpu`` alone would start one process.) Each writes
``OUT/result.json`` (losses, steps, tokens, the ``distributed`` record) and the adapters under
``OUT/sft/adapter`` and ``OUT/dpo/adapter``; :func:`differences` compares two runs, for the CPU proof
(tests/training/test_ddp_launch.py) and the GPU gate's check 11 (verification/test_gpu_data_parallel.py).
``--kill-at-step K`` makes the last rank exit hard at the end of SFT step K (a killed rank); the next run
with the same OUT resumes from the last checkpoint, on any number of ranks. ``--batch-rebalance`` trains SFT
with ``TrainSpec.batch_rebalance`` (global batch 4 as 2 rows x 2 accumulated micro-batches, 2 ranks x 1 under the
launcher) on :data:`VARIED_EXAMPLES`, whose steps split into micro-batches of 1 and 3 rows; DPO as without it
(train_dpo refuses the lever on more than one rank).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from cleanroom import distributed, fixtures
from cleanroom.artifacts import atomic_write_bytes, pretty_json
from cleanroom.loader import CleanModelLoader
from cleanroom.spec import replace
from cleanroom.training import LoraSpec, TrainSpec, train_dpo, train_sft

#: 16 distinct examples (so the data order matters: a wrong shard shows in the losses), global batch 4.
SFT_EXAMPLES = [{"prompt": f"Item {i}: name the colour of thing {i}.\nAnswer:",
                 "completion": f" thing {i} is {['red', 'green', 'blue', 'grey'][i % 4]}."} for i in range(16)]
#: 5 held-out examples of different lengths: an odd count (one rank gets a row more) and unequal rows, so an eval
#: loss that depended on how rows fall into batches or ranks would differ from one process's
EVAL_EXAMPLES = [{"prompt": f"Item {i}: name the colour of thing {i}.\nAnswer:",
                  "completion": f" thing {i} is{' very' * (i % 3) * 3} {['red', 'green', 'blue', 'grey'][i % 4]}."}
                 for i in range(16, 21)]
PAIRS = [{"prompt": f"Say the number {i}.\nAnswer:", "chosen": f" {i}.", "rejected": f" not {i + 1}, no."}
         for i in range(8)]


#: SFT_EXAMPLES with every fourth completion three times longer: a step of 4 holding one of them is rebalanced into
#: micro-batches of 1 and 3 rows, on one rank (accumulated) or on two
VARIED_EXAMPLES = [{"prompt": ex["prompt"], "completion": ex["completion"] + (" red green blue grey" * 8 if i % 4 == 0
                                                                              else "")}
                   for i, ex in enumerate(SFT_EXAMPLES)]


def _specs(rebalance: bool = False) -> tuple[Any, Any, Any]:

    # fp32 on CUDA too: the comparison with one process is then about the reduction order alone
    common: dict[str, Any] = dict(max_length=64, gradient_checkpointing=False, seed=3407, logging_steps=1,
                                  precision="fp32")
    sft = TrainSpec(learning_rate=1e-2, num_epochs=1, batch_size=4, save_steps=2, **common)  # 4 steps
    dpo = TrainSpec(learning_rate=1e-3, num_epochs=1, batch_size=4, save_steps=1, **common)  # 2 steps
    if rebalance:  # the same global batch of 4, as 2 accumulated micro-batches (divide_batch: 2 ranks x 1)
        sft = replace(sft, batch_size=2, gradient_accumulation_steps=2, batch_rebalance=True)
    return LoraSpec(r=8, alpha=16), sft, dpo


class _KillAt:
    """Exit the last rank hard (no cleanup, as a killed process) at the end of optimizer step ``step``."""

    def __new__(cls, step: int) -> Any:
        # heavy optional: transformers
        from transformers import TrainerCallback


        class KillAt(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                w = distributed.world()
                if state.global_step == step and w.rank == w.world_size - 1:
                    os._exit(17)
                return control

        return KillAt()


def run(out: Path, model_path: Path, kill_at_step: int | None = None, rebalance: bool = False) -> dict[str, Any]:
    """SFT on :data:`SFT_EXAMPLES` (:data:`VARIED_EXAMPLES`, batch-rebalanced, with ``rebalance``), then DPO from the
    merged SFT model on :data:`PAIRS`; resumes what it finds."""
    # heavy optional: torch
    import torch


    w = distributed.world()
    lora, sft_spec, dpo_spec = _specs(rebalance)
    loader = CleanModelLoader(model_path, probe=False, dtype="float32", device_map=distributed.device_map(w))
    model, tok, _ = loader.load()
    callbacks = [_KillAt(kill_at_step)] if kill_at_step is not None else []
    examples = VARIED_EXAMPLES if rebalance else SFT_EXAMPLES
    sft = train_sft(model, tok, examples, lora=lora, train=sft_spec, output_dir=out / "sft", resume=True,
                    callbacks=callbacks, eval_examples=EVAL_EXAMPLES)
    merged = sft.model.merge_and_unload()
    dpo = train_dpo(merged, tok, PAIRS, lora=lora, train=dpo_spec, beta=0.1, output_dir=out / "dpo", resume=True)
    result = {name: {"losses": list(r.losses), "loss_steps": list(r.loss_steps), "eval_losses": list(r.eval_losses),
                     "steps": r.steps,
                     "seconds": r.seconds, "tokens": r.tokens, "resumed_from": r.resumed_from,
                     "distributed": r.distributed, "step0_loss": r.step0_loss}
              for name, r in (("sft", sft), ("dpo", dpo))}
    result["torch"] = {"version": str(torch.__version__)}
    distributed.on_main(w, lambda: atomic_write_bytes(out / "result.json", pretty_json(result)))
    return result


def launch(out: Path, model_path: Path, n: int, *, cpu: bool, extra: tuple[str, ...] = (),
           timeout_s: float = 600) -> subprocess.CompletedProcess:
    """Run this module on ``n`` ranks through ``accelerate launch`` (a free port; output captured)."""


    argv, env = distributed.launch_command(n, cpu=cpu)
    cmd = [*argv, "-m", "cleanroom.training.ddp_check", str(out), "--model", str(model_path), *extra]
    return subprocess.run(cmd, env=os.environ | env, capture_output=True, text=True, timeout=timeout_s)


def differences(ref: Path, got: Path, *, loss_rtol: float, adapter_atol: float) -> dict[str, Any]:
    """How two runs' ``result.json`` and adapters differ: per stage, the largest relative loss difference (train
    losses and eval losses),
    the largest absolute adapter-weight difference, and whether the logged steps are the same."""
    # heavy optional: safetensors
    from safetensors.torch import load_file

    a, b = (json.loads((d / "result.json").read_text()) for d in (ref, got))
    out: dict[str, Any] = {}
    for stage in ("sft", "dpo"):
        x = load_file(ref / stage / "adapter" / "adapter_model.safetensors")
        y = load_file(got / stage / "adapter" / "adapter_model.safetensors")
        same_steps = a[stage]["loss_steps"] == b[stage]["loss_steps"] and x.keys() == y.keys()
        same_steps = same_steps and len(a[stage].get("eval_losses", [])) == len(b[stage].get("eval_losses", []))
        # train losses and (SFT) the token-weighted eval losses, which must not depend on the number of ranks
        pairs = [*zip(a[stage]["losses"], b[stage]["losses"], strict=False),
                 *zip(a[stage].get("eval_losses", []), b[stage].get("eval_losses", []), strict=False)]
        loss = max((abs(p - q) / abs(p) for p, q in pairs), default=float("inf"))
        weights = max((float((x[k] - y[k]).abs().max()) for k in x), default=float("inf")) if same_steps else float("inf")
        out[stage] = {"same_steps": same_steps, "loss_rel_diff": loss, "adapter_abs_diff": weights,
                      "ok": same_steps and loss <= loss_rtol and weights <= adapter_atol}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cleanroom.training.ddp_check", description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--model", type=Path, default=None, help="base model directory (default: the tiny fixture)")
    p.add_argument("--kill-at-step", type=int, default=None)
    p.add_argument("--batch-rebalance", action="store_true", help="train SFT with TrainSpec.batch_rebalance")
    args = p.parse_args(argv)

    run(args.out, args.model or fixtures.tiny_base_model(), args.kill_at_step, args.batch_rebalance)
    print(json.dumps({"result": str(args.out / "result.json")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

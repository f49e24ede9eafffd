"""Print SFT training throughput (tokens/s, s/step, peak memory) and the memory model's estimate for the model.

    python benchmarks/bench_train_step.py [--model DIR] [--quantization nf4] [--steps 5] [--batch 2] [--seq 64]

Defaults to the tiny CPU fixture. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="local model dir (default: the tiny fixture)")
    ap.add_argument("--quantization", default=None, choices=["nf4", "int8"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--r", type=int, default=16)
    args = ap.parse_args()

    from cleanroom import fixtures
    from cleanroom.loader import CleanModelLoader
    from cleanroom.memory import estimate_peak_memory
    from cleanroom.training import LoraSpec, TrainSpec, train_sft

    path = Path(args.model) if args.model else fixtures.tiny_base_model()
    model, tok, _ = CleanModelLoader(path, quantization=args.quantization, probe=False).load()
    words = max(1, args.seq // 2 - 8)
    examples = [{"prompt": f"Example {i}: count the words.\nAnswer:", "completion": " word" * words} for i in range(64)]
    lora = LoraSpec(r=args.r, alpha=2 * args.r)
    train = TrainSpec(max_steps=args.steps, batch_size=args.batch, max_length=args.seq, save_steps=10**6,
                      gradient_checkpointing=True)
    with tempfile.TemporaryDirectory() as out:
        res = train_sft(model, tok, examples, lora=lora, train=train, output_dir=Path(out))
    est = estimate_peak_memory(model.config.to_dict(), quantization=args.quantization or "bf16", lora_r=args.r,
                               lora_targets=lora.targets, batch_size=args.batch, seq_len=args.seq,
                               gradient_checkpointing=True)
    print(json.dumps({
        "model": str(path), "quantization": args.quantization, "steps": res.steps, "seconds": round(res.seconds, 3),
        "s_per_step": round(res.seconds / max(res.steps, 1), 4), "tokens": res.tokens,
        "tokens_per_s": round(res.tokens_per_s, 1), "peak_mem_bytes": res.peak_mem_bytes,
        "peak_mem_kind": res.peak_mem_kind, "estimated_allocated_bytes": est.allocated_bytes,
        "estimate_parts": dict(est.parts), "losses": [round(x, 4) for x in res.losses],
    }, indent=2))


if __name__ == "__main__":
    main()

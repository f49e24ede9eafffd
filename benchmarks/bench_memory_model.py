"""Print measured QLoRA peak memory next to cleanroom.memory's estimate, part by part (CUDA only).

    python benchmarks/bench_memory_model.py [--archs qwen2.5-0.5b,qwen2.5-1.5b,qwen2.5-7b] [--batches 1,4] [--seq 512]
        [--upcast]        # with TrainSpec.kbit_fp32_upcast (peft's fp32 upcast of the non-quantized weights)

For each random-initialised Qwen2.5 architecture and batch size: nf4, LoRA r=64 on every projection,
gradient checkpointing, a few SFT steps; ``torch.cuda.max_memory_allocated`` minus what was allocated
before the load. Two batch sizes separate the per-token slope (activations + logits) from the fixed
part (weights + LoRA states), which is what calibration of the constants needs. Figures are printed,
never asserted; the gate (verification/test_gpu_gate.py, check 8) asserts the ±15% band.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

GIB = 1024**3


def _gate_module():
    path = Path(__file__).resolve().parents[1] / "verification" / "test_gpu_gate.py"
    spec = importlib.util.spec_from_file_location("cleanroom_gpu_gate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="qwen2.5-0.5b,qwen2.5-1.5b,qwen2.5-7b")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--upcast", action="store_true", help="TrainSpec.kbit_fp32_upcast=True (default: off, as TrainSpec)")
    args = ap.parse_args()

    from cleanroom import memory
    from cleanroom.memory import arch_for
    from cleanroom.training import ALL_PROJECTIONS

    gate = _gate_module()
    rows = []
    for arch in args.archs.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            with tempfile.TemporaryDirectory() as out:
                m = gate.measure_qlora_peak(arch, batch=batch, seq=args.seq, steps=args.steps, out=Path(out),
                                            kbit_fp32_upcast=args.upcast)
            est = memory.estimate_peak_memory(arch_for(arch), quantization="nf4", lora_r=gate.MEM_R,
                                              lora_targets=ALL_PROJECTIONS, batch_size=batch, seq_len=args.seq,
                                              gradient_checkpointing=True, kbit_fp32_upcast=args.upcast)
            row = {"arch": arch, "batch": batch, "seq": args.seq, "kbit_fp32_upcast": args.upcast,
                   "measured_weights_gib": round(m["weights_bytes"] / GIB, 4),
                   "measured_peak_gib": round(m["peak_bytes"] / GIB, 4),
                   "estimated_allocated_gib": round(est.allocated_bytes / GIB, 4),
                   "error_pct": round(100 * (est.allocated_bytes / m["peak_bytes"] - 1), 1),
                   "estimate_parts_gib": {k: round(v / GIB, 4) for k, v in est.parts.items()},
                   "s_per_step": round(m["s_per_step"], 4), "tokens_per_s": round(m["tokens_per_s"], 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

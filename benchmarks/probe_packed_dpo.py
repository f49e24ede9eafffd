"""Print how far padding-free DPO's per-sequence log-probs sit from the padded ones, beside the noise floor.

    python benchmarks/probe_packed_dpo.py --model qwen2.5-7b --quantization nf4 --pairs 8

One preference batch of the bench's length-varied pairs (``bench_train_side_by_side.dpo_pairs``), chosen rows then
rejected rows, through TRL's fused LM head as DPO computes them: each row's summed completion log-prob

    padded   the batch right-padded, as trl's DPOTrainer runs it
    alone    each row by itself, no padding (another batch shape: the floor of what the kernels' rounding moves)
    packed   the batch as one packed row (cleanroom.training.packed_forward), positions restarting per row
    leak     the packed row with positions 0..T-1 (rows attend to the rows before them: the positive control)

and prints max/mean |difference| over the rows, in nats and relative to the row's log-prob. Figures are printed,
never asserted: on the CPU in fp32 packed equals padded to ~1e-5 (tests/training/test_padding_free.py); on a GPU in
bf16 the question is whether packed sits within the padded-vs-alone floor, far from the leak.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_side_by_side import _cuda, dpo_pairs, load, model_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "cleanroom" / "bench-models")
    ap.add_argument("--quantization", default=None, choices=["nf4", "int8"])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--max-prompt", type=int, default=384)
    ap.add_argument("--max-completion", type=int, default=1024)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch
    from trl.trainer.utils import add_fused_lm_head

    from cleanroom.training.collate import GuardedPreferenceCollator
    from cleanroom.training.dpo import render_pairs
    from cleanroom.training.packed_forward import row_logps

    model, tok = load(model_dir(args.model, args.cache), args.quantization)
    model.eval()
    add_fused_lm_head(model)
    rows = render_pairs(tok, dpo_pairs(args.pairs, 7, args.max_prompt, args.max_completion), args.max_length)
    device = next(model.parameters()).device
    collate = GuardedPreferenceCollator(tok, max_length=args.max_length)
    batch = {k: v.to(device) for k, v in collate(rows).items()}
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if _cuda() else torch.autocast("cpu", enabled=False)
    keep = batch["attention_mask"].bool()
    with ctx:  # the forward TRL's fused head gave the model: padded, each row alone, packed, packed and leaking
        padded = row_logps(model.forward, batch)
        alone = torch.cat([row_logps(model.forward, {k: v[i:i + 1, keep[i]] for k, v in batch.items()})
                           for i in range(keep.shape[0])])
        packed = row_logps(model.forward, batch, restart=True)  # packed_call over the same forward
        leak = row_logps(model.forward, batch, restart=False)

    def gap(a: Any, b: Any) -> dict[str, float]:
        d = (a - b).abs()
        return {"max_nats": round(float(d.max()), 4), "mean_nats": round(float(d.mean()), 4),
                "max_rel": float(f"{float((d / b.abs()).max()):.3g}")}

    result = {"model": args.model, "quantization": args.quantization, "rows": int(keep.shape[0]),
              "real_tokens": int(keep.sum()), "padded_tokens": int(keep.numel()),
              "row_logp_range": [round(float(padded.min()), 2), round(float(padded.max()), 2)],
              "padded_vs_alone": gap(padded, alone), "packed_vs_padded": gap(packed, padded),
              "packed_vs_alone": gap(packed, alone), "leak_vs_padded": gap(leak, padded),
              "device": torch.cuda.get_device_name(0) if _cuda() else "cpu"}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

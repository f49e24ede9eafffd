"""Generation engines side by side with plain ``generate``: tokens/s, % of the decode roofline, greedy parity.

    python benchmarks/bench_generation.py                          # CUDA: random Qwen2.5-1.5B and 7B, bf16 and nf4
    python benchmarks/bench_generation.py --archs qwen2.5-0.5b --precisions bf16 --new-tokens 64
    python benchmarks/bench_generation.py --cpu-tiny                # CPU: the tiny fixture, auto vs hf vs static

One run, one table: for each model and precision, the same prompts (``--prompt-tokens`` tokens each) through
every engine at ``--batch`` (and ``--paged-requests`` requests for the paged engine), greedy, each engine
warmed up once on the same shapes (compilation and CUDA-graph capture reported apart as ``warmup_s``), then
timed. tokens/s counts the tokens each engine actually generated (``generated_counts``). The decode roofline
is the weight bytes read once per decode step at ``--bandwidth`` bytes/s (the H200 copies about 4.3 TB/s),
times the batch: ``batch * bandwidth / weight_bytes`` tokens/s. Parity: the greedy tokens of every engine
against ``hf`` through :func:`cleanroom.generation.greedy_divergences` (ties within ``--tie-tol`` allowed).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

from cleanroom import fixtures
from cleanroom.generation import generate, greedy_first_differences
from cleanroom.loader import CleanModelLoader


def prompts_of(tok: Any, n: int, tokens: int) -> list[str]:
    """*n* distinct prompts of about *tokens* tokens each (plain English words, a numbered topic each)."""
    words = ("the river carries light stones past old mills while children count boats and birds sing "
             "over quiet fields where farmers rest near warm bread and tall grass").split()
    out = []
    for i in range(n):
        text = f"Topic {i}:"
        k = 0
        while len(tok(text)["input_ids"]) < tokens:
            text += " " + words[(i + k) % len(words)]
            k += 1
        out.append(text)
    return out


def timed(model: Any, tok: Any, prompts: list[str], engine: str, args: argparse.Namespace, batch: int) -> dict:
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t0 = time.perf_counter()
    generate(model, tok, prompts[:batch], max_new_tokens=args.new_tokens, batch_size=batch, engine=engine)
    sync()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = generate(model, tok, prompts, max_new_tokens=args.new_tokens, batch_size=batch, engine=engine)
    sync()
    seconds = time.perf_counter() - t0
    made = sum(res.generated_counts)
    return {"engine": engine, "batch": batch, "requests": len(prompts), "warmup_s": round(warm, 2),
            "seconds": round(seconds, 2), "new_tokens": made, "tokens_per_s": round(made / seconds, 1), "result": res,
            "reason": res.engine_reason}


def bench_model(path: Path, precision: str, args: argparse.Namespace) -> list[dict]:
    import torch

    cuda = torch.cuda.is_available()
    loader = CleanModelLoader(path, quantization=None if precision in ("bf16", "fp32") else precision,
                              dtype="float32" if precision == "fp32" else "bfloat16",
                              device_map="cuda" if cuda else None, probe=False)
    model, tok, _ = loader.load()
    weight_bytes = model.get_memory_footprint()
    prompts = prompts_of(tok, args.batch, args.prompt_tokens)
    rows = []
    for engine in args.engines:
        if engine == "paged" and not cuda and not args.paged_on_cpu:
            continue
        rows.append(timed(model, tok, prompts, engine, args, args.batch))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "result"}), flush=True)
        if engine == "paged" and args.paged_requests > args.batch:
            many = prompts_of(tok, args.paged_requests, args.prompt_tokens)
            rows.append(timed(model, tok, many, engine, args, args.batch))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "result"}), flush=True)
    ref = next(r for r in rows if r["engine"] == "hf")
    roofline = args.batch * args.bandwidth / weight_bytes
    for r in rows:
        r["ratio_to_plain"] = round(r["tokens_per_s"] / ref["tokens_per_s"], 2)
        r["pct_roofline"] = round(100 * r["tokens_per_s"] / roofline, 1) if cuda else None
        if r["requests"] == len(prompts):
            first = greedy_first_differences(model, tok, prompts, ref["result"], r["result"])
            gaps, steps = [d[4] for d in first], [d[5] for d in first]
            r["differ"] = len(gaps)  # prompts whose tokens differ from hf's anywhere
            r["divergences"] = sum(g >= args.tie_tol for g in gaps)  # ... at a gap that is not a tie
            r["divergences_steps"] = sum(k >= args.tie_steps for k in steps)  # ... tolerance in bf16 steps
            r["max_gap"] = round(max(gaps), 4) if gaps else 0.0
            r["max_steps"] = round(max(steps), 1) if steps else 0.0
            r["gaps"] = sorted(round(g, 4) for g in gaps)
            print(json.dumps({"model": path.name, "precision": precision, "engine": r["engine"], "differ": r["differ"],
                              "divergences": r["divergences"], "divergences_steps": r["divergences_steps"],
                              "max_gap": r["max_gap"], "max_steps": r["max_steps"], "gaps": r["gaps"]}), flush=True)
    for r in rows:
        r.pop("result")
        r.update(model=path.name, precision=precision, weight_gib=round(weight_bytes / 2**30, 2),
                 roofline_tokens_per_s=round(roofline) if cuda else None)
    del model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="qwen2.5-1.5b,qwen2.5-7b")
    p.add_argument("--precisions", default="bf16,nf4")
    p.add_argument("--engines", default="hf,static,paged")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--paged-requests", type=int, default=256)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--bandwidth", type=float, default=4.3e12, help="bytes/s the GPU reads memory at (H200: 4.3e12)")
    p.add_argument("--tie-tol", type=float, default=0.1, help="logit gap under which two greedy choices tie")
    p.add_argument("--tie-steps", type=float, default=8.0,
                   help="the same tolerance in bfloat16 steps at the logits' magnitude (column divergences_steps)")
    p.add_argument("--cpu-tiny", action="store_true", help="the tiny fixture on the CPU (fp32)")
    p.add_argument("--paged-on-cpu", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    args.engines = args.engines.split(",")
    if "hf" not in args.engines:
        args.engines.insert(0, "hf")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"device: {device}; torch {torch.__version__}; batch {args.batch}, {args.prompt_tokens} prompt tokens, "
          f"{args.new_tokens} new tokens, greedy", flush=True)
    rows: list[dict] = []
    if args.cpu_tiny:
        rows += bench_model(fixtures.tiny_base_model(), "fp32", args)
    else:
        for arch in args.archs.split(","):
            path = fixtures.random_qwen25_model(arch, fixtures.cache_root() / "gpu-gate" / arch)
            for precision in args.precisions.split(","):
                rows += bench_model(path, precision, args)
    header = ("model", "precision", "engine", "batch", "requests", "tokens_per_s", "pct_roofline", "ratio_to_plain",
              "warmup_s", "differ", "divergences", "divergences_steps", "max_gap", "max_steps")
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(r.get(h, "")) for h in header) + " |")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

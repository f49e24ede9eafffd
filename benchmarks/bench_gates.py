"""Throughput of the code gates on a generated tree of realistic research scripts (target >= 1,000 files/s).

Usage: ``python benchmarks/bench_gates.py [--files 2000] [--repeat 3]``. Prints figures (cold without
the cache, first run filling it, warm with every file unchanged) and a verdict line per figure against
the issue's target of 1,000 files/s on one core (CPU time, so other load on the machine counts less);
asserts only that all runs agree. The floor line is CPython's ``compile()`` alone, which every cold
file needs for CR901: where it is below the target, no cold run can reach it. ``--chains N`` (default 5,000;
0 skips) also times the dict rule (CR501) on three one-module chains of N links that once made it quadratic
(a dict returned through N private functions; copied N times, ``k1 = dict(k0)`` ... in source order and in
reverse), and asserts each still finds its one write.
The tree mimics a research repository: training/eval scripts of 80-250 lines with imports,
argparse, dataclasses, loops, classes, docstrings, and a violation in about one file in ten.
Single process, one core: the figure is what ``cleanroom gates`` does in a pre-commit hook.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cleanroom.code_gates import GateConfig, check_source, run_gates
from cleanroom.code_gates.cache import cache_folder
from cleanroom.code_gates.prefilter import needs_ast

TARGET = 1_000  # files/s on one core (issue 8)

HEADER = '''"""{title}: {purpose}.

Run with ``python {name}.py --lr 2e-5``. Uses the clean loader; never apply_chat_template here.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
{extra_imports}

@dataclass
class Config{idx}:
    lr: float = {lr}
    batch_size: int = {bs}
    epochs: int = {epochs}
    warmup: float = 0.03
    seed: int = {seed}
    tags: list[str] = field(default_factory=lambda: ["{title}", "base"])
'''

FUNCTION = '''

def {fname}(batch, model, cfg: Config{idx}, step: int = 0):
    """Compute the {what} for one batch (see section {section} of the notes)."""
    total = 0.0
    for i, row in enumerate(batch):
        x = torch.as_tensor(row["input_ids"])
        if i % {mod} == 0 and step > cfg.warmup * 100:
            total += float(x.float().mean()) * math.exp(-i / {decay})
        elif len(row.get("labels", [])) > {cut}:
            total -= 0.5 * len(row["labels"]) / (1 + step)
        else:
            total += sum(v for v in row.get("weights", [1.0]))
    scores = {{k: v / max(1, len(batch)) for k, v in {{"total": total, "n": len(batch)}}.items()}}
    # tokenizer.chat_template = None was the old way; the loader does it now
    return scores
'''

CLASS = '''

class {cname}:
    """A small stateful helper: running means of {what}."""

    def __init__(self, window: int = {window}) -> None:
        self.window = window
        self.values: list[float] = []

    def update(self, value: float) -> float:
        self.values.append(value)
        self.values = self.values[-self.window :]
        return sum(self.values) / len(self.values)

    def __repr__(self) -> str:
        return f"{cname}(window={{self.window}}, n={{len(self.values)}})"
'''

MAIN = """

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="{title}")
    parser.add_argument("--lr", type=float, default={lr})
    parser.add_argument("--out", type=Path, default=Path("runs/{name}"))
    args = parser.parse_args(argv)
    cfg = Config{idx}(lr=args.lr)
    rng = np.random.default_rng(cfg.seed)
    data = [{{"input_ids": rng.integers(0, 100, size=16).tolist(), "labels": [1, 2]}} for _ in range(64)]
    loader = DataLoader(data, batch_size=cfg.batch_size, collate_fn=list)
{body}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps({{"lr": cfg.lr}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
"""

VIOLATIONS = [
    "    tok = AutoTokenizer.from_pretrained(os.environ['MODEL'])\n",
    "    state = torch.load(args.out / 'ckpt.pt')\n",
    "    model_cfg = {'x': 1}\n    model_cfg['chat_template'] = None\n",
    "    ids = [len(r) for r in data]\n    print(len(ids), add_special_tokens=False)\n",
]

LOADER_USE = (
    "    from cleanroom import CleanModelLoader\n\n"
    "    model, tokenizer, prov = CleanModelLoader(os.environ['MODEL']).load()\n"
    "    extra = json.load(open(args.out / 'extra.json'))\n"
)


def make_script(idx: int, rng: random.Random) -> str:
    name = f"exp_{idx:05d}"
    parts = [
        HEADER.format(
            title=name,
            name=name,
            purpose=rng.choice(["SFT sweep", "DPO ablation", "eval of checkpoints", "data filter"]),
            extra_imports=rng.choice(
                ["", "from transformers import AutoTokenizer", "import scipy.stats as st"]
            ),
            idx=idx,
            lr=rng.choice(["1e-5", "2e-5", "5e-6"]),
            bs=rng.choice([4, 8, 16]),
            epochs=rng.randint(1, 5),
            seed=rng.randint(0, 9999),
        )
    ]
    fnames = []
    for k in range(rng.randint(2, 6)):
        fname = f"step_{k}_{rng.choice(['loss', 'reward', 'margin', 'kl'])}"
        fnames.append(fname)
        parts.append(
            FUNCTION.format(
                fname=fname,
                idx=idx,
                what=rng.choice(["loss", "reward", "KL"]),
                section=rng.randint(1, 9),
                mod=rng.randint(2, 7),
                decay=rng.randint(5, 50),
                cut=rng.randint(1, 9),
            )
        )
    for k in range(rng.randint(0, 2)):
        parts.append(CLASS.format(cname=f"Meter{k}", what="losses", window=rng.randint(10, 100)))
    body = "".join(
        f"    for step, batch in enumerate(loader):\n        s = {f}(batch, None, cfg, step)\n        print(step, s)\n"
        for f in fnames
    )
    if rng.random() < 0.4:  # a migrated script: loads through the clean loader, reads JSON
        body += LOADER_USE
    if rng.random() < 0.1:
        body += rng.choice(VIOLATIONS)
    parts.append(MAIN.format(title=name, name=name, lr="2e-5", idx=idx, body=body))
    return "".join(parts)


def build_tree(root: Path, n_files: int, seed: int = 0) -> tuple[int, int, int]:
    """Write the tree; return (lines, bytes, files whose text needs the AST walk)."""
    rng = random.Random(seed)
    total_lines = total_bytes = walked = 0
    for idx in range(n_files):
        folder = root / f"project_{idx % 20:02d}" / ("scripts" if idx % 3 else "src/lab")
        folder.mkdir(parents=True, exist_ok=True)
        text = make_script(idx, rng)
        walked += needs_ast(compile(text, "x.py", "exec", dont_inherit=True, optimize=0), text)
        (folder / f"exp_{idx:05d}.py").write_text(text)
        total_lines += text.count("\n")
        total_bytes += len(text.encode())
    return total_lines, total_bytes, walked


def chain_modules(n: int) -> dict[str, str]:
    """The three chain shapes of ``--chains``: each writes the switch once and spreads it into a load at the end."""
    load = "from transformers import AutoModel\n"
    returns = [load] + [f"def _f{i}(t):\n    return _f{i + 1}(t)\n" for i in range(n)]
    returns += [f'def _f{n}(t):\n    kw = {{}}\n    kw["trust_remote_code"] = t\n    return kw\n']
    returns += ["def _go(p, t):\n    return AutoModel.from_pretrained(p, **_f0(t))\n"]
    head = load + 'def _go(p, t):\n    k0 = {}\n    k0["trust_remote_code"] = t\n'
    links = [f"    k{i} = dict(k{i - 1})\n" for i in range(1, n + 1)]
    tail = f"    return AutoModel.from_pretrained(p, **k{n})\n"
    return {
        "returned through functions": "".join(returns),
        "copied, in source order": head + "".join(links) + tail,
        "copied, in reverse order": head + "".join(reversed(links)) + tail,
    }


def chain_figures(n: int) -> None:
    """Cold CPU time of one module per chain shape (:func:`chain_modules`); each must find its one CR501."""
    for label, text in chain_modules(n).items():
        start_cpu = time.process_time()
        found = check_source(text.encode(), "chain.py").violations
        cpu = time.process_time() - start_cpu
        assert [v.rule for v in found].count("CR501") == 1, (label, found)
        print(f"dict rule, a chain of {n:,} links {label}: CPU {cpu:.2f} s (one module, cold)")


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chains", type=int, default=5000)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    machine = (
        f"{_cpu_model()}, {os.cpu_count()} cpus{load}, {platform.system()}, Python {sys.version.split()[0]}"
    )
    print(f"machine: {machine}")
    print(f"commit: {commit or 'unknown'}")
    with tempfile.TemporaryDirectory(prefix="cleanroom-bench-gates-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        os.environ["CLEANROOM_CACHE_DIR"] = str(Path(tmp) / "cache")  # never the user's own cache
        lines, size, walked = build_tree(root, args.files)
        print(
            f"tree: {args.files} files, {lines} lines, {size / 1e6:.1f} MB; {walked} files need the AST walk (their code mentions a trigger name)"
        )
        config = GateConfig(root=root)

        def timed(use_cache: bool) -> tuple[float, float, object]:
            start, start_cpu = time.perf_counter(), time.process_time()
            report = run_gates(config, [root], use_cache=use_cache)
            return time.perf_counter() - start, time.process_time() - start_cpu, report

        cold = [timed(False) for _ in range(args.repeat)]
        store = cache_folder()
        shutil.rmtree(store, ignore_errors=True)
        first = timed(True)  # empty cache: a cold run plus hashing and writing the store
        warm = [timed(True) for _ in range(args.repeat)]
        report = cold[0][2]
        assert all(r.lines() == report.lines() for _, _, r in [*cold, first, *warm])  # same findings
        n = report.files_checked
        print(
            f"violations found: {len(report.violations)} ({', '.join(f'{r}: {k}' for r, k in report.counts().items() if k)})"
        )
        per_core = {}
        for label, runs in (
            ("cold, no cache (--no-cache)", cold),
            ("first run, empty cache (cold + write)", [first]),
            ("warm, unchanged files hit the cache", warm),
        ):
            wall = min(r[0] for r in runs)
            cpu = min(r[1] for r in runs)
            per_core[label.split(",")[0]] = n / cpu
            print(
                f"{label:40s} best of {len(runs)}: {wall:.3f} s wall = {n / wall:,.0f} files/s, "
                f"{lines / wall:,.0f} lines/s; CPU {cpu:.3f} s = {n / cpu:,.0f} files/s per core"
            )
        sources = [f.read_bytes() for f in sorted(root.rglob("*.py"))]
        floor = float("inf")
        for _ in range(args.repeat):
            start_cpu = time.process_time()
            for text in sources:
                compile(text, "x.py", "exec", dont_inherit=True, optimize=0)
            floor = min(floor, time.process_time() - start_cpu)
        print(
            f"floor: CPython compile() alone (the check CR901 needs on every file, cold): CPU {floor:.3f} s = "
            f"{len(sources) / floor:,.0f} files/s per core"
        )
        for kind in ("cold", "warm"):
            rate = per_core[kind]
            verdict = "meets" if rate >= TARGET else "MISSES"
            print(
                f"target {TARGET:,} files/s on one core: {kind} {rate:,.0f} files/s per core {verdict} it "
                f"({rate / TARGET:.0%} of target; compile() floor {len(sources) / floor:,.0f}; machine: {machine})"
            )
        size_kb = sum(f.stat().st_size for f in store.iterdir()) / 1e3
        print(
            f"cache store: {size_kb:.0f} kB under $CLEANROOM_CACHE_DIR (default ~/.cache/cleanroom/gates; key: sha256 of the bytes; salt: gates source + Python)"
        )
        start = time.perf_counter()
        grep = subprocess.run(
            ["grep", "-rn", "chat_template = None", str(root)], capture_output=True, text=True
        )
        elapsed = time.perf_counter() - start
        hits = len(grep.stdout.splitlines())
        print(
            f"seed grep 'chat_template = None': {elapsed:.3f} s, {hits} hits (all in comments: false alarms)"
        )
    if args.chains:
        chain_figures(args.chains)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

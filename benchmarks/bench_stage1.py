"""Print the per-stage times of the tiny Stage 1 run, with the machine's load beside them.

    python benchmarks/bench_stage1.py [--out DIR] [--profile tiny] [--cprofile FILE] [key=value ...]

Runs ``cleanroom run stage1 --no-progress`` in a fresh directory (default: a temporary one) and prints a
table of the seconds each stage reported (``<stage>: finished in X s``), their sum (the pipeline time,
without interpreter start-up), the wall time, CPU count, ``OMP_NUM_THREADS`` and the 1-minute load
average before and after. Timings on a loaded machine are noisy: compare ratios, or pass ``--cprofile
FILE`` to profile the run (``python -m pstats FILE``). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FINISHED = re.compile(r"\] (\w+): finished in ([0-9.]+) s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="runs root (default: a temporary directory)")
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--cprofile", type=Path, default=None, help="write cProfile stats of the whole run here")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="bench-stage1-"))
    prefix = [sys.executable]
    if args.cprofile is not None:
        prefix += ["-m", "cProfile", "-o", str(args.cprofile)]
    cmd = [*prefix, "-m", "cleanroom.cli", "run", "stage1", "--profile", args.profile, "--out", str(out),
           "--no-progress", *args.overrides]
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wall = time.monotonic() - t0
    load_after = os.getloadavg()[0]
    if proc.returncode != 0:
        sys.exit(f"bench_stage1: the run exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    times = [(m.group(1), float(m.group(2))) for m in FINISHED.finditer(proc.stdout)]
    print(f"{'stage':<10} {'seconds':>8}")
    for name, seconds in times:
        print(f"{name:<10} {seconds:8.1f}")
    print(f"{'pipeline':<10} {sum(s for _, s in times):8.1f}   (sum of stages)")
    print(f"{'wall':<10} {wall:8.1f}   (process, incl. start-up, fixtures and the report)")
    print(f"cpus {os.cpu_count()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load (1 min) {load_before:.2f} before, {load_after:.2f} after; run in {out}")
    verdict = next((line for line in proc.stdout.splitlines() if "Stage 2:" in line), "")
    print(verdict.split("] ", 1)[-1])


if __name__ == "__main__":
    main()

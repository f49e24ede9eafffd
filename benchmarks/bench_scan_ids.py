"""Throughput of guard.scan_ids (target >= 1M tokens/s on one core): prints tokens/s for ragged and padded batches."""

from __future__ import annotations

import time

import numpy as np

from cleanroom import guard


def main() -> None:
    rng = np.random.default_rng(0)
    forbidden = frozenset(range(151644, 151665))
    padded = rng.integers(0, 151643, size=(256, 4096))
    mask = np.ones_like(padded)
    ragged = [list(row[: rng.integers(512, 4096)]) for row in padded[:64]]
    for name, call, n in [
        ("padded 256x4096 + mask", lambda: guard.scan_ids(padded, forbidden, mask=mask), int(mask.sum())),
        ("ragged 64 lists", lambda: guard.scan_ids(ragged, forbidden), sum(map(len, ragged))),
    ]:
        call()
        t = time.perf_counter()
        for _ in range(5):
            call()
        dt = (time.perf_counter() - t) / 5
        print(f"{name}: {n} tokens in {dt * 1e3:.1f} ms = {n / dt / 1e6:.1f} M tokens/s")


if __name__ == "__main__":
    main()

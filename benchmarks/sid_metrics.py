"""SID distribution metrics at 1 M and 10 M items against a straightforward per-row Python count.

    python -m benchmarks.sid_metrics [--sizes 1000000 10000000]

The metrics (Gini, collision and unique-SID rates, items per SID, per-level utilisation, entropy,
perplexity, dead codes) use integer SID keys and NumPy; the baseline counts tuples with collections.Counter
row by row and derives the same figures. Saves benchmarks/results/sid_metrics-cpu.json.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from benchmarks.results_file import save
from quality.sid_metrics import distribution_metrics

SIZES = [8192, 8192, 8192]


def codes_for(n: int, seed: int = 0) -> np.ndarray:
    """Skewed 3-level codes like a real build's (popular prefixes, long tail)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.zipf(1.3, n) % 8192, rng.integers(0, 512, n), rng.zipf(1.5, n) % 8192], 1).astype(np.int32)


def python_baseline(codes: np.ndarray) -> dict:
    """The same figures counted one row at a time."""
    sids: Counter = Counter()
    levels = [Counter() for _ in SIZES]
    for row in codes.tolist():
        sids[tuple(row)] += 1
        for level, code in enumerate(row):
            levels[level][code] += 1
    n = len(codes)
    shared = sum(c for c in sids.values() if c > 1)
    x = sorted(sids.values())
    padded = n - len(x)
    weighted = sum((padded + i + 1) * v for i, v in enumerate(x))
    return {
        "gini": 2 * weighted / (n * n) - (n + 1) / n,
        "collision_rate": shared / n,
        "unique_sid_rate": len(sids) / n,
        "max_items_per_sid": max(x),
        "utilisation_per_level": [len(c) / s for c, s in zip(levels, SIZES, strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        codes = codes_for(n)
        started = time.perf_counter()
        fast = distribution_metrics(codes, SIZES)
        fast_s = time.perf_counter() - started
        started = time.perf_counter()
        slow = python_baseline(codes)
        slow_s = time.perf_counter() - started
        for key, value in slow.items():
            assert np.allclose(fast[key], value), (key, fast[key], value)
        rows.append(
            {
                "items": n,
                "vectorised_s": fast_s,
                "python_s": slow_s,
                "speedup": slow_s / fast_s,
                "gini": fast["gini"],
                "collision_rate": fast["collision_rate"],
            }
        )
    print(f"{'items':>11} {'vectorised s':>13} {'python s':>9} {'speed-up':>9}")
    for r in rows:
        print(f"{r['items']:>11,} {r['vectorised_s']:>13.2f} {r['python_s']:>9.2f} {r['speedup']:>8.1f}x")
    save("sid_metrics-cpu", {"results": rows})


if __name__ == "__main__":
    main()

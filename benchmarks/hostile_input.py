"""Hostile inputs in linear time: each case's seconds per unit through a size sweep (doubling sizes).

    python -m benchmarks.hostile_input [--steps 4]

Cases (each fails or quarantines as the hostile-input tests require, here at growing sizes):
- wide header: an events CSV whose header has n columns, none of them known (the limit raised to 2n for the
  sweep, so the whole header is parsed before the file fails);
- no newline: an events CSV whose one record has n bytes and no newline (quarantined, over the record limit);
- wide Parquet: an events Parquet file with n unknown columns (limit 2n; fails on the missing columns);
- duplicates: an events CSV of n copies of one event (every copy after the first quarantined).
For each case the time per unit at the largest size over the time per unit at the smallest is reported: about 1
means linear, 2**(steps-1) would mean quadratic. The ratio is the result; nothing asserts a time.
Results go to benchmarks/results/hostile_input-cpu.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.results_file import save
from ingest.run import ingest
from ingest.sources.limits import Limits
from ingest.sources.lines import SourceError
from lake import Lake

HEADER = "user_id,item_id,behavior,timestamp\n"


def wide_header(folder: Path, n: int) -> tuple[Path, Limits]:
    path = folder / f"wide-{n}.csv"
    path.write_text(",".join(f"c{i}" for i in range(n)) + "\nu,i,pv,1\n")
    return path, Limits(max_columns=2 * n, max_record_bytes=64 * n)


def no_newline(folder: Path, n: int) -> tuple[Path, Limits]:
    path = folder / f"line-{n}.csv"
    path.write_text(HEADER + "y" * n)
    return path, Limits(max_record_bytes=1 << 16)


def wide_parquet(folder: Path, n: int) -> tuple[Path, Limits]:
    path = folder / f"wide-{n}.parquet"
    pq.write_table(pa.table({f"c{i}": pa.array([1], pa.int8()) for i in range(n)}), path)
    return path, Limits(max_columns=2 * n)


def duplicates(folder: Path, n: int) -> tuple[Path, Limits]:
    path = folder / f"dups-{n}.csv"
    path.write_text(HEADER + "u,i,pv,1735689600\n" * n)
    return path, Limits()


CASES: dict[str, tuple[Callable[[Path, int], tuple[Path, Limits]], int, str]] = {
    "wide header": (wide_header, 250_000, "columns"),
    "no newline": (no_newline, 8 << 20, "bytes"),
    "wide Parquet": (wide_parquet, 5_000, "columns"),
    "duplicates": (duplicates, 250_000, "rows"),
}


def timed(folder: Path, make: Callable[[Path, int], tuple[Path, Limits]], n: int) -> float:
    """Seconds for one ingest of the case at size `n` into a fresh lake (a failure is the expected end)."""
    path, limits = make(folder, n)
    lake = Lake(folder / f"lake-{path.stem}")
    started = time.perf_counter()
    try:
        ingest(lake, [path], "events", limits=limits)
    except SourceError:
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="sizes per case, each twice the last (default 4)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, (make, start, unit) in CASES.items():
            timed(folder, make, start // 4)  # warm-up: imports and first-call costs
            sizes = [start << k for k in range(args.steps)]
            seconds = [timed(folder, make, n) for n in sizes]
            per_unit = [s / n for s, n in zip(seconds, sizes, strict=True)]
            results.append(
                {
                    "case": name,
                    "unit": unit,
                    "sizes": sizes,
                    "seconds": seconds,
                    "largest_over_smallest_per_unit": per_unit[-1] / per_unit[0],
                }
            )
    print(f"{'case':<14}{'unit':>9}  {'sizes':<48}{'seconds':<30}{'per-unit ratio':>15}")
    for row in results:
        sizes = ", ".join(f"{n:,}" for n in row["sizes"])
        seconds = ", ".join(f"{s:.2f}" for s in row["seconds"])
        ratio = row["largest_over_smallest_per_unit"]
        print(f"{row['case']:<14}{row['unit']:>9}  {sizes:<48}{seconds:<30}{ratio:>15.2f}")
    save("hostile_input-cpu", {"steps": args.steps, "results": results})


if __name__ == "__main__":
    main()

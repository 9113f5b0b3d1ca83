"""Ingest throughput: polars and Spark engines against a raw pyarrow Parquet write of the same rows.

    python -m benchmarks.ingest [--sizes 1000000 4000000] [--repeat 3] [--no-spark]

Each size generates an event log (CSV, as `sidforge generate` writes it), then times:
- pyarrow: writing the already-parsed rows with pyarrow.parquet (zstd) — the floor;
- polars: `sidforge ingest --engine polars` end to end (read, validate, de-duplicate, write, commit);
- spark: the same through the Spark engine (local mode on this machine's cores);
- spark floor: Spark's own CSV -> Parquet of the same file (typed, nothing validated or committed), the least
  the Spark engine could take here.
Each engine runs once untimed first (imports, JVM start-up), then `--repeat` times (default 3) into a fresh
lake; the median is reported, as it is for the floor.
Results are printed as a table and saved to benchmarks/results/ingest-<host>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.results_file import save
from ingest.run import ingest
from ingest.sources.events import parse_timestamp
from lake import Lake, table


def make_events(path: Path, rows: int, seed: int = 0) -> pl.DataFrame:
    """An event log of `rows` events on one day, in the generator's CSV layout."""
    rng = np.random.default_rng(seed)
    start = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp())
    frame = pl.DataFrame(
        {
            "user_id": pl.Series(rng.integers(0, rows // 20 + 1, rows)).cast(pl.String).str.zfill(8),
            "item_id": pl.Series(rng.zipf(1.3, rows) % 1_000_000).cast(pl.String).str.zfill(6),
            "behavior": np.array(["pv", "cart", "fav", "buy"])[rng.choice(4, rows, p=[0.85, 0.05, 0.04, 0.06])],
            "timestamp": np.sort(start + rng.integers(0, 86_400, rows)) * 1_000_000 + rng.integers(0, 1_000_000, rows),
        }
    ).unique(subset=["user_id", "item_id", "behavior", "timestamp"], maintain_order=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return frame


def floor_write(frame: pl.DataFrame, out: Path) -> float:
    """Seconds for pyarrow to write the parsed rows as the interactions table's Parquet (zstd)."""
    spec = table("interactions")
    rows = (
        frame.select(
            "user_id",
            "item_id",
            "behavior",
            event_ts=parse_timestamp(pl.col("timestamp").cast(pl.String)),
            source=pl.lit("events.csv"),
            run_id=pl.lit("bench"),
        )
        .to_arrow()
        .cast(pa.schema([spec.schema.field(c) for c in spec.data_columns]))
    )
    started = time.perf_counter()
    pq.write_table(rows, out, compression="zstd", row_group_size=1 << 20)
    return time.perf_counter() - started


def spark_floor(csv: Path, out: Path, repeat: int) -> float:
    """Median seconds for Spark itself to turn `csv` into zstd Parquet (typed columns, nothing validated or
    committed): the least the Spark engine could take on this machine, after one untimed warm-up."""
    from lake.spark import spark_session

    spark = spark_session()
    schema = "user_id string, item_id string, behavior string, timestamp long"
    seconds = []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        frame = spark.read.csv(str(csv), header=True, schema=schema)
        frame.write.mode("overwrite").parquet(str(out / f"spark-{attempt}"))
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:])


def timed_ingest(work: Path, csv: Path, engine: str, rows: int, repeat: int) -> float:
    """Median seconds of `repeat` ingests of `csv` into fresh lakes, after one untimed warm-up."""
    ingest(Lake(work / f"warm-{engine}"), [csv], "events", ds="2025-01-01", engine=engine)  # imports, JVM start
    seconds = []
    for attempt in range(repeat):
        report = ingest(Lake(work / f"{engine}-{attempt}"), [csv], "events", ds="2025-01-01", engine=engine)
        assert report.rows_written == rows, report
        seconds.append(report.seconds)
        shutil.rmtree(work / f"{engine}-{attempt}")
    return statistics.median(seconds)


def run(sizes: list[int], spark: bool, repeat: int) -> list[dict]:
    results = []
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix="sidforge-bench-"))
        try:
            csv = work / "raw" / "events.csv"
            frame = make_events(csv, size)
            n = frame.height
            floor = statistics.median(floor_write(frame, work / "floor.parquet") for _ in range(repeat))
            row = {
                "rows": n,
                "csv_bytes": csv.stat().st_size,
                "repeat": repeat,
                "pyarrow_s": floor,
                "polars_s": timed_ingest(work, csv, "polars", n, repeat),
            }
            if spark:
                row["spark_s"] = timed_ingest(work, csv, "spark", n, repeat)
                row["spark_floor_s"] = spark_floor(csv, work, repeat)
                row["spark_vs_spark_floor"] = row["spark_s"] / row["spark_floor_s"]
            for engine in ("pyarrow", "polars", "spark", "spark_floor"):
                if f"{engine}_s" in row:
                    row[f"{engine}_rows_per_s"] = n / row[f"{engine}_s"]
            row["polars_vs_pyarrow"] = row["polars_s"] / row["pyarrow_s"]
            row["polars_rows_per_s_per_core"] = row["polars_rows_per_s"] / (os.cpu_count() or 1)
            results.append(row)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per engine and size (median reported)")
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args()
    results = run(args.sizes, spark=not args.no_spark, repeat=args.repeat)
    print(
        f"{'rows':>10} {'pyarrow rows/s':>15} {'polars rows/s':>14} {'spark rows/s':>13} {'spark floor':>12} "
        f"{'polars/pyarrow':>15} {'spark/floor':>12} {'polars rows/s/core':>19}"
    )
    for r in results:
        spark_rate = f"{r['spark_rows_per_s']:>13,.0f}" if "spark_rows_per_s" in r else f"{'-':>13}"
        spark_floor_rate = f"{r['spark_floor_rows_per_s']:>12,.0f}" if "spark_floor_s" in r else f"{'-':>12}"
        spark_ratio = f"{r['spark_vs_spark_floor']:>11.2f}x" if "spark_floor_s" in r else f"{'-':>12}"
        print(
            f"{r['rows']:>10,} {r['pyarrow_rows_per_s']:>15,.0f} {r['polars_rows_per_s']:>14,.0f} {spark_rate} "
            f"{spark_floor_rate} {r['polars_vs_pyarrow']:>14.2f}x {spark_ratio} "
            f"{r['polars_rows_per_s_per_core']:>19,.0f}"
        )
    save("ingest-cpu", {"results": results}, polars=pl.__version__)


if __name__ == "__main__":
    main()

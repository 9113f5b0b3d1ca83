"""Publishing throughput: examples per second for the polars and Spark engines against writing the same rows
with plain pyarrow (the floor).

    python -m benchmarks.publish [--scales demo small] [--rows-per-shard 500000] [--repeat 3] [--no-spark]

Generates AL-GR-format data, ingests the sequences and the reference Item-SID file, then times
`publish_training_data` end to end (examples mapped to SIDs, sharded, checksummed, manifest, registration)
and a pyarrow write of the finished rows. Each engine runs once untimed (imports, JVM start-up), then
`--repeat` times as new datasets; medians are reported. Saves benchmarks/results/publish-cpu.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.results_file import save
from ingest.run import ingest
from ingest.synthetic import generate
from lake import Lake
from publish.training_data import PublishReport, publish_training_data


def timed_publish(lake: Lake, engine: str, rows_per_shard: int, repeat: int) -> tuple[float, PublishReport]:
    """Median seconds of `repeat` publications as new datasets, after one untimed warm-up, and the last report."""
    publish_training_data(lake, build_id="ref", dataset=f"warm-{engine}", engine=engine)
    seconds = []
    for attempt in range(repeat):
        started = time.perf_counter()
        report = publish_training_data(
            lake, build_id="ref", dataset=f"{engine}-{attempt}", engine=engine, rows_per_shard=rows_per_shard
        )
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), report


def floor_write(table: pa.Table, out: Path) -> float:
    """Seconds for plain pyarrow to write the published rows (zstd, the shards' row-group size)."""
    started = time.perf_counter()
    pq.write_table(table, out, compression="zstd", row_group_size=65_536)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["demo", "small"])
    parser.add_argument("--rows-per-shard", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per engine (median reported)")
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args()
    rows = []
    for scale in args.scales:
        work = Path(tempfile.mkdtemp(prefix="sidforge-publish-"))
        try:
            generate(work / "raw", scale, 0)
            lake = Lake(work / "lake")
            ingest(lake, [work / "raw" / "algr" / "origin_behavior"], "algr-sequences")
            ingest(lake, [work / "raw" / "algr" / "item_sid"], "algr-item-sid", build_id="ref")
            polars_s, report = timed_publish(lake, "polars", args.rows_per_shard, args.repeat)
            spark_s = None if args.no_spark else timed_publish(lake, "spark", args.rows_per_shard, args.repeat)[0]
            shards = [Path(report.published.path, s["path"]) for s in report.published.manifest["shards"]]
            table = pl.read_parquet(shards).to_arrow()
            floor_s = statistics.median(floor_write(table, work / "floor.parquet") for _ in range(args.repeat))
            rows.append(
                {
                    "scale": scale,
                    "examples": report.examples,
                    "polars_s": polars_s,
                    "pyarrow_s": floor_s,
                    "polars_examples_per_s": report.examples / polars_s,
                    "pyarrow_examples_per_s": report.examples / floor_s,
                    "polars_vs_pyarrow": polars_s / floor_s,
                    "spark_s": spark_s,
                    "spark_examples_per_s": report.examples / spark_s if spark_s else None,
                    "shards": len(shards),
                    "bytes": sum(s["bytes"] for s in report.published.manifest["shards"]),
                }
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"{'scale':>6} {'examples':>10} {'polars ex/s':>12} {'spark ex/s':>11} {'pyarrow ex/s':>13} "
        f"{'polars/pyarrow':>15}"
    )
    for r in rows:
        spark = f"{r['spark_examples_per_s']:>11,.0f}" if r["spark_examples_per_s"] else f"{'-':>11}"
        print(
            f"{r['scale']:>6} {r['examples']:>10,} {r['polars_examples_per_s']:>12,.0f} {spark} "
            f"{r['pyarrow_examples_per_s']:>13,.0f} {r['polars_vs_pyarrow']:>14.2f}x"
        )
    save("publish-cpu", {"results": rows})


if __name__ == "__main__":
    main()

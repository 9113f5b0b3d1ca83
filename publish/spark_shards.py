"""Publishing through Spark with the shards written on the executors: the examples never meet on the driver.

Spark builds the examples (`examples_with_spark`) and caches them; one small job counts each split, tasks deal
each user to a shard by the polars engine's hash, and the frame is partitioned by (split, shard), so one task
holds every row of a shard. A first pass over the partitions returns each part's `Contents` (the version id
needs them before anything is written); a second writes each shard with the polars engine's `write_shard`
(the driver only sees manifest entries), so both engines publish byte-identical versions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import IntegerType, StructField, StructType

from lake import storage
from lake.frames import to_frame
from lake.lake import Lake
from publish.shards import Contents, Prepared, shard_counts, shard_numbers, write_shard
from publish.spark_examples import conform_examples, examples_with_spark

_STATS = ("examples", "users", "history_unknown_items", "target_unknown_items", "history_tokens")
CONTENTS_SCHEMA = pa.schema([("split", pa.string()), ("digest", pa.int64()), *((k, pa.int64()) for k in _STATS)])
_TEXT, _LONG = pa.string(), pa.int64()
SHARD_SCHEMA = pa.schema([("path", _TEXT), ("split", _TEXT), ("rows", _LONG), ("bytes", _LONG), ("sha256", _TEXT)])


def prepare_with_spark(
    spark: SparkSession,
    lake: Lake,
    source: str,
    build_id: str,
    sizes: Sequence[int],
    test_days: Sequence[str],
    rows_per_shard: int,
) -> Prepared:
    """The examples of `source` mapped to `build_id` by Spark, counted and ready to be written by executors."""
    examples = examples_with_spark(spark, lake, source, build_id, sizes, test_days).persist()
    usable_row = F.size("target_tokens") > 0
    per_split = (
        examples.groupBy("split")
        .agg(
            F.count(F.lit(1)).alias("examples"),
            F.count(F.when(usable_row, 1)).alias("usable"),
            F.coalesce(F.sum("history_unknown"), F.lit(0)).alias("history_unknown"),
            F.coalesce(F.sum("target_unknown"), F.lit(0)).alias("target_unknown"),
        )
        .collect()
    )
    usable = examples.filter(usable_row)
    counts = shard_counts({r["split"]: r["usable"] for r in per_split if r["usable"]}, rows_per_shard)
    parts = (
        usable.mapInArrow(_dealt(counts), StructType([*usable.schema.fields, StructField("_shard", IntegerType())]))
        .repartition(max(sum(counts.values()), 1), "split", "_shard")
        .persist()
    )
    examples.unpersist()
    contents = sum(
        (
            Contents(r["examples"], r["digest"] % (1 << 64), {r["split"]: {k: r[k] for k in _STATS}})
            for r in parts.mapInArrow(_contents, from_arrow_schema(CONTENTS_SCHEMA)).collect()
        ),
        Contents(0, 0, {}),
    )

    def write(out: str) -> list[dict]:
        task = _writer(out, lake.storage_options)
        entries = [r.asDict() for r in parts.mapInArrow(task, from_arrow_schema(SHARD_SCHEMA)).collect()]
        parts.unpersist()
        return entries

    return Prepared(
        contents,
        write,
        sum(r["examples"] for r in per_split) - contents.examples,
        sum(int(r["history_unknown"]) for r in per_split),
        sum(int(r["target_unknown"]) for r in per_split),
    )


def _dealt(counts: dict[str, int]):
    """The task that adds each row's shard: its user's hash modulo its split's shard count."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = to_frame(batch.select(["user_id", "split"]))
            count = pl.col("split").replace_strict(counts, return_dtype=pl.UInt64)
            shard = frame.select(shard_numbers(pl.col("user_id"), count)).to_series().to_arrow()
            yield batch.append_column("_shard", shard.cast(pa.int32()))

    return run


def _partition(batches: Iterator[pa.RecordBatch]) -> pl.DataFrame | None:
    """A task's whole partition (every row of the shards it holds) as conformed examples, None when empty."""
    frames = [to_frame(b) for b in batches if b.num_rows]
    if not frames:
        return None
    frame = pl.concat(frames)
    return conform_examples(frame).with_columns(frame["_shard"])


def _contents(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """One row per split of the partition: its `Contents` (users are whole: each lies in one shard)."""
    frame = _partition(batches)
    if frame is None:
        return
    rows = []
    for (split,), part in frame.group_by("split"):
        found = Contents.of(part)
        digest = int(np.array([found.digest], dtype=np.uint64).view(np.int64)[0])
        rows.append({"split": split, "digest": digest, **found.splits[split]})
    yield pa.RecordBatch.from_pylist(rows, schema=CONTENTS_SCHEMA)


def _writer(out: str, options: storage.Options):
    """The task that writes each shard of its partition under `out` and returns their manifest entries."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        frame = _partition(batches)
        if frame is None:
            return
        entries = [
            write_shard(part.drop("_shard"), out, split, shard, options)
            for (split, shard), part in frame.group_by("split", "_shard")
        ]
        yield pa.RecordBatch.from_pylist(entries, schema=SHARD_SCHEMA)

    return run

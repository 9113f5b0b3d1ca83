"""The Spark engine for ingest: files parsed in parallel tasks by the same readers, de-duplicated and
partitioned by Spark, written as Parquet to `<lake>/_staging/<table>/<run_id>/`, committed by the lake.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import polars as pl
import pyarrow as pa

from ingest.formats import Format, ReadOptions
from ingest.plan import IngestReport, Job, Progress, Staged, duplicates_to_rejects, whole_file_reject
from ingest.sources.lines import RejectedFile, SourceError, Span, split_lines
from ingest.sources.records import REJECT_SCHEMA
from lake import storage
from lake.catalog import table
from lake.commit_plan import StagedWriter, staged_partitions
from lake.frames import to_frame
from lake.lake import Lake
from lake.provenance import SOURCE_FOLDER
from lake.spark import spark_session

_EXTRA = [
    ("line", pa.int64()),
    ("file_index", pa.int32()),
    ("kind", pa.string()),
    ("source_file", pa.string()),
    ("raw", pa.string()),
    ("reason", pa.string()),
    ("reject_ds", pa.string()),
    ("count", pa.int64()),
]
SPLIT_BYTES = 64 << 20  # a text file is read by several tasks in spans of lines of at least this size


def _task_schema(table_name: str) -> pa.Schema:
    spec = table(table_name)
    fields = [f.with_nullable(True) for f in spec.schema if f.name != "run_id"]
    return pa.schema(fields + [pa.field(n, t) for n, t in _EXTRA if n not in spec.schema.names])


def _parse_task(fmt: Format, opts: ReadOptions, schema: pa.Schema):
    """The function Spark runs on each task: parse the task's file spans into tagged Arrow batches.

    A file that cannot be read, or is rejected whole, becomes one `file_error` / `file_reject` batch (the
    driver fails with the message, or quarantines the file and drops its rows)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index, path, start, end, first in zip(
                *(batch.column(c).to_pylist() for c in ("file_index", "path", "start", "end", "first_line")),
                strict=True,
            ):
                span = Span(start, end, first) if start is not None else None
                try:
                    for block in fmt.read(path, replace(opts, span=span)):
                        rows = block.rows.with_columns(file_index=pl.lit(index, pl.Int32), kind=pl.lit("row"))
                        rejects = block.rejects.rename({"ds": "reject_ds"}).with_columns(
                            file_index=pl.lit(index, pl.Int32), kind=pl.lit("reject")
                        )
                        stats = pl.DataFrame(
                            {
                                "kind": ["stats"],
                                "file_index": [index],
                                "count": [block.blank_lines],
                                "line": [block.missing_images],
                            },
                            schema_overrides={"file_index": pl.Int32, "line": pl.Int64},
                        )
                        for part in (rows, rejects, stats):
                            if part.height:
                                yield _conform(part, schema)
                except SourceError as exc:
                    kind, reason = (
                        ("file_reject", exc.reason) if isinstance(exc, RejectedFile) else ("file_error", str(exc))
                    )
                    yield _conform(
                        pl.DataFrame(
                            {"kind": [kind], "file_index": [index], "reason": [reason]},
                            schema_overrides={"file_index": pl.Int32},
                        ),
                        schema,
                    )

    return run


def _conform(frame: pl.DataFrame, schema: pa.Schema) -> pa.RecordBatch:
    arrow = frame.to_arrow()
    columns = [
        arrow.column(f.name).cast(f.type) if f.name in arrow.column_names else pa.nulls(arrow.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(
        [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns], schema=schema
    )


def _tasks(fmt: Format, files: Sequence[str], pieces: int) -> list[tuple]:
    """(file index, path, start, end, first line) per parse task: a large uncompressed text file of a
    line-per-record format is cut into spans of lines; any other file is one task (no span)."""
    tasks: list[tuple] = []
    for index, path in enumerate(files):
        spans = (
            split_lines(path, pieces, SPLIT_BYTES) if fmt.splittable and not path.lower().endswith(".parquet") else []
        )
        if len(spans) > 1:
            tasks += [(index, path, s.start, s.end, s.first_line) for s in spans]
        else:
            tasks.append((index, path, None, None, None))
    return tasks


@dataclass
class SparkEngine:
    """Ingest through Spark (`master`: local[N] or a cluster URL): files parsed in parallel tasks by the same
    readers, de-duplicated by a window over the keys only when some key repeats."""

    master: str | None = None
    name: str = "spark"

    def stage(self, job: Job, report: IngestReport, progress: Progress | None) -> Staged:
        """Parse `job`'s files through Spark and stage their rows; fills `report`'s counts."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema

        fmt, files, opts = job.fmt, job.files, job.opts
        spark = spark_session(self.master)
        spec = table(fmt.table)
        schema = _task_schema(fmt.table)
        spans = _tasks(fmt, files, spark.sparkContext.defaultParallelism)
        inputs = spark.createDataFrame(spans, "file_index int, path string, start long, end long, first_line long")
        parsed = (
            inputs.repartition(len(spans))
            .mapInArrow(_parse_task(fmt, opts, schema), from_arrow_schema(schema, prefer_timestamp_ntz=False))
            .persist()
        )
        try:
            stats = (
                parsed.filter(F.col("kind") == "stats")
                .agg(
                    F.coalesce(F.sum("count"), F.lit(0)).alias("blank"),
                    F.coalesce(F.sum("line"), F.lit(0)).alias("img"),
                )
                .first()
            )
            if stats is None:
                raise RuntimeError("Spark returned no statistics row for the parsed files")
            report.blank_lines, report.missing_images = int(stats["blank"]), int(stats["img"])
            problems = (
                parsed.filter(F.col("kind").isin("file_error", "file_reject"))
                .select("kind", "file_index", "reason")
                .collect()
            )
            failed = [p["reason"] for p in problems if p["kind"] == "file_error"]
            if failed:
                raise SourceError(failed[0])
            dropped = {int(p["file_index"]): p["reason"] for p in problems}
            if dropped:  # files quarantined whole: none of their rows or records stay
                parsed = parsed.filter(~F.col("file_index").isin(list(dropped)))
            per_file = (
                parsed.filter(F.col("kind").isin("row", "reject"))
                .groupBy("file_index")
                .agg(F.count("*").alias("records"), F.sum((F.col("kind") == "row").cast("long")).alias("rows"))
                .collect()
            )
            rows = parsed.filter(F.col("kind") == "row")
            file_names = F.element_at(F.array(*[F.lit(str(f)) for f in files]), F.col("file_index") + 1)
            duplicates = pl.DataFrame(schema=REJECT_SCHEMA)
            repeated = (
                rows.groupBy(*fmt.dedup).agg(F.count("*").alias("_n")).filter(F.col("_n") > 1) if fmt.dedup else None
            )
            if repeated is not None and not repeated.isEmpty():  # a sort per key only when some key repeats
                order = Window.partitionBy(*fmt.dedup).orderBy("file_index", "line")
                rows = rows.withColumn("_rn", F.row_number().over(order))
                dups = rows.filter(F.col("_rn") > 1).select(
                    file_names.alias("source_file"), "line", *fmt.dedup, *(["ds"] if "ds" in rows.columns else [])
                )
                duplicates = duplicates_to_rejects(to_frame(dups.toArrow()), fmt.dedup)
                rows = rows.filter(F.col("_rn") == 1)
            source_keys = F.element_at(F.array(*[F.lit(job.keys[str(f)]) for f in files]), F.col("file_index") + 1)
            rows = (
                rows.withColumn("run_id", F.lit(report.run_id))
                .withColumn(SOURCE_FOLDER, source_keys)
                .select(*spec.schema.names, SOURCE_FOLDER)
            )
            rejects = parsed.filter(F.col("kind") == "reject").select(
                "source_file", "line", "raw", "reason", F.col("reject_ds").alias("ds")
            )
            reject_frame = pl.concat(
                [
                    to_frame(rejects.toArrow()).cast(REJECT_SCHEMA),
                    duplicates,
                    *(whole_file_reject(files[i], reason, opts.ds) for i, reason in dropped.items()),
                ]
            )
            staged, partitions = _write_staged(job.lake, spec.name, rows, report, job.staging)
            report.rows_read = sum(int(r["records"]) for r in per_file) + len(dropped)
            valid = {str(files[r["file_index"]]): int(r["rows"]) for r in per_file}
            return Staged(staged, reject_frame, valid, partitions)
        finally:
            parsed.unpersist()


def _stage_task(root: str, options: dict[str, str] | None, table_name: str, staging: str):
    """The function Spark runs on each write task: its rows staged through the lake's filesystem by the same
    writer as the polars engine (pyarrow, so an object-store lake needs no Hadoop connector); yields the
    locations of the files it wrote."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        writer = StagedWriter(storage.filesystem(root, options)[0], table_name, staging)
        try:
            for batch in batches:
                frame = to_frame(pa.Table.from_batches([batch]))
                for (key,), part in frame.partition_by(SOURCE_FOLDER, as_dict=True, maintain_order=True).items():
                    writer.write(part.drop(SOURCE_FOLDER), str(key))
        finally:
            writer.close()
        yield pa.record_batch({"path": list(writer.rows), "rows": pa.array(list(writer.rows.values()), pa.int64())})

    return run


def _write_staged(lake: Lake, table_name: str, rows, report: IngestReport, staging: str) -> tuple[list[str], list]:
    """Stage the rows from every task (a file per partition and input in each, as Spark's own writer would) and
    return the files and the partitions written (from their folders); the tasks count the rows they wrote."""
    task = _stage_task(lake.root, lake.storage_options, table_name, staging)
    written = {r["path"]: r["rows"] for r in rows.mapInArrow(task, "path string, rows long").collect()}
    report.rows_written = sum(written.values())
    return sorted(written), staged_partitions(table_name, staging, written)

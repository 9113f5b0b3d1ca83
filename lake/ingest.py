"""Ingest source files into the lake: parse, validate, de-duplicate, stage Parquet, commit once.

Both engines (polars here, Spark in `lake.spark_ingest`) share the readers, the quarantine writer and
the committer, so they produce identical tables. Every call replaces the partitions it writes (or
merges by key for `items`) and accounts for every record: read = written + quarantined.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lake.catalog import table
from lake.formats import ReadOptions, default_build, default_model, expand_paths, get_format, read_file
from lake.hashing import row_hashes
from lake.lake import Lake, sql_literal
from lake.sources.records import REJECT_SCHEMA, Parsed

ROWS_PER_FILE = 4_000_000
Progress = Callable[[int], None]


@dataclass
class IngestReport:
    """What one ingest did: counts that must add up, partitions replaced and the commit version."""

    table: str
    format: str
    engine: str
    run_id: str
    files: list[str]
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    blank_lines: int = 0
    missing_images: int = 0
    partitions: list[dict[str, str]] = field(default_factory=list)
    version: int | None = None
    seconds: float = 0.0

    def check(self) -> None:
        """Raise unless every record read was written or quarantined."""
        if self.rows_read != self.rows_written + self.rows_quarantined:
            raise RuntimeError(
                f"ingest of {self.files} lost records: read {self.rows_read}, wrote {self.rows_written}, "
                f"quarantined {self.rows_quarantined}")

    def as_dict(self) -> dict:
        """Plain dict for metadata and JSON output."""
        return asdict(self)


def new_run_id() -> str:
    """A fresh run id for ingests started outside Dagster."""
    return f"cli-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def duplicate_reason(keys: Sequence[str]) -> str:
    """The quarantine reason for a record whose keys repeat an earlier record of the same ingest."""
    return f"duplicate record (same {', '.join(keys)} as an earlier record)"


class Deduplicator:
    """Remembers 64-bit hashes of the keys seen so far; later records with a seen key are duplicates."""

    def __init__(self, keys: Sequence[str]):
        self.keys = list(keys)
        self.seen = np.empty(0, dtype=np.uint64)

    def _lookup(self, ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Insertion points of the sorted hashes `ordered` among the seen ones, and which are already seen."""
        pos = np.searchsorted(self.seen, ordered)  # sorted queries walk the seen array in order: cache-friendly
        known = self.seen[np.minimum(pos, len(self.seen) - 1)] == ordered if len(self.seen) else pos < 0
        return pos, known

    def _remember(self, ordered: np.ndarray, pos: np.ndarray) -> None:
        """Merge new sorted hashes into the seen ones in linear time, given their insertion points."""
        slots = pos + np.arange(len(ordered))
        merged = np.empty(len(self.seen) + len(ordered), dtype=np.uint64)
        fresh = np.zeros(len(merged), dtype=bool)
        fresh[slots] = True
        merged[slots] = ordered
        merged[~fresh] = self.seen
        self.seen = merged

    def split(self, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(rows seen for the first time, duplicates of an earlier row of this block or of earlier blocks)."""
        if not self.keys or not rows.height:
            return rows, rows.clear()
        values = row_hashes(rows, self.keys, seed=7)
        ordered = np.sort(values)
        if not (ordered[1:] == ordered[:-1]).any():
            pos, known = self._lookup(ordered)
            if not known.any():  # the common case: nothing repeats
                self._remember(ordered, pos)
                return rows, rows.clear()
        order = np.argsort(values, kind="stable")  # stable: the first occurrence comes first
        ordered = values[order]
        pos, known = self._lookup(ordered)
        first = np.concatenate([[True], ordered[1:] != ordered[:-1]]) & ~known
        keep = np.empty(len(values), dtype=bool)
        keep[order] = first
        self._remember(ordered[first], pos[first])
        return rows.filter(pl.Series(keep)), rows.filter(pl.Series(~keep))


def duplicates_to_rejects(dups: pl.DataFrame, keys: Sequence[str], source: str) -> pl.DataFrame:
    """Quarantine records for duplicate rows (their keys as raw text)."""
    ds = pl.col("ds") if "ds" in dups.columns else pl.lit(dt.date.today().isoformat())
    raw = pl.concat_str([pl.col(k).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") if dups.schema[k].is_temporal()
                         else pl.col(k).cast(pl.String) for k in keys], separator=",")
    return dups.select(source_file=pl.lit(source), line=pl.col("line").cast(pl.Int64), raw=raw,
                       reason=pl.lit(duplicate_reason(keys)), ds=ds)


def _large(field: pa.Field) -> pa.Field:
    """`field` with 64-bit offsets (large strings and lists): the layout Polars exports without a copy."""
    kind = field.type
    if pa.types.is_string(kind):
        return field.with_type(pa.large_string())
    if pa.types.is_list(kind):
        return field.with_type(pa.large_list(_large(kind.value_field)))
    return field


class _PartitionWriter:
    """Streams rows into Parquet files inside the table folder, one open file per partition."""

    def __init__(self, lake: Lake, table_name: str, run_id: str):
        self.spec = table(table_name)
        fs, root = lake.filesystem()
        self.fs, self.dir = fs, f"{root}/{self.spec.name}"
        self.arrow_schema = pa.schema([_large(self.spec.schema.field(c)) for c in self.spec.data_columns])
        self.tag = f"{run_id[-12:]}-{uuid.uuid4().hex[:8]}"
        self.writers: dict[tuple, tuple[pq.ParquetWriter, str, int]] = {}
        self.files: list[str] = []
        self.partitions: set[tuple] = set()

    def write(self, rows: pl.DataFrame) -> None:
        keys = list(self.spec.partition_by)
        first = rows.row(0, named=True) if rows.height else {}
        if not keys or rows.select(pl.all_horizontal(pl.col(k).eq_missing(first[k]) for k in keys).all()).item():
            groups = {tuple(first[k] for k in keys): rows}  # one partition: no copy
        else:
            groups = rows.partition_by(keys, as_dict=True, maintain_order=True)
        for key, part in groups.items():
            self.partitions.add(key)
            arrow = part.select(self.spec.data_columns).to_arrow(compat_level=pl.CompatLevel.oldest())
            arrow = arrow.cast(self.arrow_schema)
            writer, path, count = self.writers.get(key) or self._open(key)
            writer.write_table(arrow, row_group_size=1 << 20)
            count += arrow.num_rows
            self.writers[key] = (writer, path, count)
            if count >= ROWS_PER_FILE:
                writer.close()
                del self.writers[key]

    def _open(self, key: tuple) -> tuple[pq.ParquetWriter, str, int]:
        folder = "/".join(f"{c}={quote(str(v), safe='-_.:')}" for c, v in zip(self.spec.partition_by, key,
                                                                                strict=True))
        directory = f"{self.dir}/{folder}" if folder else self.dir
        self.fs.create_dir(directory, recursive=True)
        path = f"{directory}/part-{self.tag}-{len(self.files):05d}.zstd.parquet"
        self.files.append(path)
        sink = self.fs.open_output_stream(path)
        return pq.ParquetWriter(sink, self.arrow_schema, compression="zstd"), path, 0

    def close(self) -> list[str]:
        for writer, _, _ in self.writers.values():
            writer.close()
        self.writers.clear()
        return self.files


def write_quarantine(lake: Lake, table_name: str, rejects: pl.DataFrame, files: Sequence[str], run_id: str) -> None:
    """Replace the quarantine records of `files` for `table_name` with `rejects`."""
    now = dt.datetime.now(dt.UTC)
    frame = rejects.with_columns(table=pl.lit(table_name), run_id=pl.lit(run_id),
                                 quarantined_at=pl.lit(now, pl.Datetime("us", "UTC")))
    where = f'"table" = {sql_literal(table_name)} AND source_file IN ({", ".join(map(sql_literal, files))})'
    lake.overwrite("quarantine", frame, run_id=run_id, where=where, sources=files)


def register_imported_build(lake: Lake, build_id: str, files: Sequence[str], levels: int, size: int,
                            run_id: str) -> None:
    """Record an imported (published AL-GR) semantic-ID build in `sid_builds`."""
    row = pl.DataFrame({
        "build_id": [build_id], "method": ["imported"], "levels": [levels], "sizes": [[size] * levels],
        "inputs": [json.dumps({"files": list(files)})], "seed": [None], "status": ["imported"],
        "metrics": [None], "created_at": [dt.datetime.now(dt.UTC)], "run_id": [run_id],
    }, schema_overrides={"levels": pl.Int16, "sizes": pl.List(pl.Int32), "seed": pl.Int64})
    lake.merge("sid_builds", row, run_id=run_id, sources=files)


def ingest(lake: Lake, paths: Sequence[str | Path], fmt: str, *, ds: str | None = None, engine: str = "polars",
           run_id: str | None = None, model: str | None = None, build_id: str | None = None,
           trust_pickle: bool = False, spark_master: str | None = None,
           progress: Progress | None = None) -> IngestReport:
    """Ingest `paths` (files or folders) of format `fmt` into the lake and return the checked report."""
    spec = get_format(fmt)
    files = expand_paths(paths, spec)
    opts = ReadOptions(ds=ds, trust_pickle=trust_pickle,
                       model=model or (default_model(spec, files) if spec.table == "item_embeddings" else None),
                       build_id=build_id or (default_build(files) if spec.table == "item_sids" else None))
    run_id = run_id or new_run_id()
    started = time.perf_counter()
    report = IngestReport(spec.table, spec.name, engine, run_id, [str(f) for f in files])
    if engine == "spark":
        from lake.spark_ingest import ingest_with_spark

        rejects = ingest_with_spark(lake, spec, files, opts, report, master=spark_master)
    elif engine == "polars":
        rejects = _ingest_with_polars(lake, spec, files, opts, report, progress)
    else:
        raise ValueError(f"unknown engine {engine!r}; choose polars or spark")
    write_quarantine(lake, spec.table, rejects, report.files, run_id)
    report.rows_quarantined = rejects.height
    if spec.table == "item_sids" and report.rows_written:
        levels = (lake.scan("item_sids").filter(pl.col("build_id") == opts.build_id)
                  .select(pl.col("codes").list.len().max()).collect().item())
        register_imported_build(lake, opts.build_id or "", report.files, levels, opts.codebook_size, run_id)
    report.seconds = time.perf_counter() - started
    report.check()
    return report


def _ingest_with_polars(lake: Lake, spec, files: Sequence[Path], opts: ReadOptions, report: IngestReport,
                        progress: Progress | None) -> pl.DataFrame:
    tspec = table(spec.table)
    dedup = Deduplicator(spec.dedup)
    writer = None if spec.merge else _PartitionWriter(lake, spec.table, report.run_id)
    merged: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = [pl.DataFrame(schema=REJECT_SCHEMA)]
    # Parsing the next block overlaps with writing the previous one (both release the GIL).
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidforge-write") if writer else None
    pending: deque[Future] = deque()
    for path in files:
        block: Parsed
        for block in read_file(spec, path, opts):
            report.rows_read += block.records
            report.blank_lines += block.blank_lines
            report.missing_images += block.missing_images
            rows, dups = dedup.split(block.rows)
            rejects += [block.rejects, duplicates_to_rejects(dups, spec.dedup, str(path))] if dups.height else [
                block.rejects]
            rows = rows.with_columns(run_id=pl.lit(report.run_id))
            report.rows_written += rows.height
            if writer is not None and pool is not None:
                pending.append(pool.submit(writer.write, rows))
                if len(pending) > 1:
                    pending.popleft().result()
            else:
                merged.append(rows.select(tspec.schema.names))
            if progress:
                progress(block.records)
    if writer is None or pool is None:
        frame = pl.concat(merged) if merged else pl.from_arrow(tspec.schema.empty_table())
        report.version = lake.merge(spec.table, frame, run_id=report.run_id, sources=report.files,
                                    keep=spec.keep_on_update)
    else:
        for future in pending:
            future.result()
        pool.shutdown()
        staged = writer.close()
        replace = [dict(zip(tspec.partition_by, key, strict=True)) for key in sorted(writer.partitions)]
        if opts.ds and tspec.partition_by == ("ds",):
            replace = [*replace, {"ds": opts.ds}] if {"ds": opts.ds} not in replace else replace
        report.partitions = replace
        report.version = lake.commit_files(spec.table, staged, run_id=report.run_id, sources=report.files,
                                           replace=replace, app_id=f"sidforge-ingest-{report.run_id}")
    return pl.concat(rejects, how="vertical_relaxed")

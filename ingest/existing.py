"""Rows an ingest stages that the table already holds: counted from 64-bit key hashes, dropped on request.

The table's side is the live files of the partitions the ingest writes, less the files the ingest replaces (a
rerun's own earlier rows are not duplicates). Only the key columns are read, one file at a time, and kept as
sorted hashes (8 bytes a row); staged files are rewritten only when they hold a duplicate that is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ingest.plan import Job, Staged, duplicates_to_rejects
from ingest.sources.records import REJECT_SCHEMA
from lake.catalog import table
from lake.commit_plan import partition_id
from lake.delta_paths import file_location
from lake.frames import to_frame
from lake.hashing import row_hashes
from lake.provenance import SOURCE_FOLDER

REASON = "duplicate of existing row"


@dataclass
class Existing:
    """How many staged rows the table holds already, and (when dropped) their quarantine records."""

    rows: int
    rejects: pl.DataFrame


def against_table(job: Job, staged: Staged, kept: pl.DataFrame, drop: bool) -> Existing:
    """Count the staged rows whose key one of the files `kept` holds (the live files that stay after the
    commit, as `Lake.files` lists them); with `drop`, remove those rows from the staged files and return their
    quarantine records."""
    keys = list(job.fmt.dedup)
    if drop and (not keys or job.fmt.merge):
        raise ValueError(
            f"--dedupe-against-table: format {job.fmt.name!r} "
            + ("merges by key already" if job.fmt.merge else "has no key that makes a duplicate")
        )
    if not keys or job.fmt.merge or not kept.height or not staged.files:
        return Existing(0, pl.DataFrame(schema=REJECT_SCHEMA))
    seen = _table_hashes(job, staged, kept, keys)
    fs = job.lake.filesystem()[0]
    sources = {key: path for path, key in job.keys.items()}
    found, rejects = 0, []
    for path in list(staged.files):
        frame = to_frame(pq.read_table(path, columns=keys, filesystem=fs))
        hashes = row_hashes(frame, keys, seed=7)
        pos = np.minimum(np.searchsorted(seen, hashes), max(len(seen) - 1, 0))
        dup = seen[pos] == hashes if len(seen) else np.zeros(len(hashes), dtype=bool)
        count = int(dup.sum())
        found += count
        if not (drop and count):
            continue
        stored = pq.read_table(path, filesystem=fs)
        whole = to_frame(stored)
        source = sources[next(seg.split("=", 1)[1] for seg in path.split("/") if seg.startswith(f"{SOURCE_FOLDER}="))]
        dups = whole.filter(pl.Series(dup)).with_columns(source_file=pl.lit(source), line=pl.lit(None, pl.Int64))
        rejects.append(duplicates_to_rejects(dups, keys, REASON))
        _rewrite(fs, path, whole.filter(pl.Series(~dup)), stored.schema, staged)
        staged.rows[source] -= count
    return Existing(found, pl.concat([pl.DataFrame(schema=REJECT_SCHEMA), *rejects], how="vertical_relaxed"))


def _table_hashes(job: Job, staged: Staged, kept: pl.DataFrame, keys: list[str]) -> np.ndarray:
    """Sorted key hashes of the rows of `kept`'s files in the partitions the ingest writes."""
    spec = table(job.fmt.table)
    touched = {partition_id(zip(spec.partition_by, p, strict=True)) for p in staged.partitions}
    names = [f"partition.{c}" for c in spec.partition_by]
    fs, root = job.lake.filesystem()
    table_dir = f"{root}/{spec.name}"
    stored = [k for k in keys if k not in spec.partition_by]
    parts = []
    for row in kept.select("path", *names).iter_rows():
        if partition_id(zip(spec.partition_by, row[1:], strict=True)) not in touched:
            continue
        frame = to_frame(pq.read_table(file_location(table_dir, row[0]), columns=stored, filesystem=fs))
        values = dict(zip(spec.partition_by, row[1:], strict=True))
        frame = frame.with_columns(pl.lit(values[k], pl.String).alias(k) for k in keys if k in values)
        parts.append(row_hashes(frame, keys, seed=7))
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)


def _rewrite(fs: pafs.FileSystem, path: str, rows: pl.DataFrame, schema: pa.Schema, staged: Staged) -> None:
    """Replace a staged file with `rows` (same schema) through a temporary file and a move; a file left with
    no row is deleted and leaves the staged list."""
    if not rows.height:
        fs.delete_file(path)
        staged.files.remove(path)
        return
    temporary = f"{path}.dedupe"
    with fs.open_output_stream(temporary) as out:
        pq.write_table(rows.to_arrow().cast(schema), out, compression="zstd")
    fs.move(temporary, path)

"""An ingest's commits, planned in full before the first one and replayable after a crash.

The plan adds the run's staged data files (or merges them by key), removes the live files that the same
inputs wrote before (and whole partitions only when asked), and swaps the inputs' quarantine records. It is
recorded in the run's journal before anything is committed; `apply` makes the data commit (checked against
concurrent writers of the same partitions) and then the quarantine commit, both idempotent through one app
transaction, so `recover` can finish a killed run's plan.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lake import journal
from lake.catalog import table
from lake.faults import crash_point
from lake.frames import to_frame
from lake.lake import Lake, partition_folders, partition_values
from lake.provenance import SOURCE_FOLDER, key_of_file

ROWS_PER_FILE = 4_000_000
ROW_GROUP_BYTES = 64 << 20  # a reader streaming a file holds one row group: bounded for wide rows too


def row_group_rows(rows: pa.Table) -> int:
    """Rows per Parquet row group for rows like these: 2**20, or fewer so that a group stays near 64 MiB in
    memory (512-d embeddings: about 32 k rows)."""
    width = rows.nbytes / rows.num_rows if rows.num_rows else 1
    return max(1024, min(1 << 20, int(ROW_GROUP_BYTES / max(width, 1))))


def _large(field_: pa.Field) -> pa.Field:
    """`field_` with 64-bit offsets (large strings and lists): the layout Polars exports without a copy."""
    kind = field_.type
    if pa.types.is_string(kind):
        return field_.with_type(pa.large_string())
    if pa.types.is_list(kind):
        return field_.with_type(pa.large_list(_large(kind.value_field)))
    return field_


class StagedWriter:
    """Streams rows into Parquet files under a run's staging folder: one open file per partition and input,
    at `<staging>/<partition folders>/sidforge_src=<input key>/part-NNNNN.zstd.parquet`."""

    def __init__(self, fs: pafs.FileSystem, table_name: str, staging: str):
        self.spec = table(table_name)
        self.fs, self.dir = fs, staging
        self.arrow_schema = pa.schema([_large(self.spec.schema.field(c)) for c in self.spec.data_columns])
        self.writers: dict[tuple, tuple[pq.ParquetWriter, str]] = {}
        self.rows: dict[str, int] = {}  # rows of each file written, in the order they were opened

    def write(self, rows: pl.DataFrame, key: str) -> None:
        """Append `rows` of the input `key` (every catalog column present)."""
        if not rows.height:
            return
        keys = list(self.spec.partition_by)
        first = rows.row(0, named=True)
        if not keys or rows.select(pl.all_horizontal(pl.col(k).eq_missing(first[k]) for k in keys).all()).item():
            groups = {tuple(first[k] for k in keys): rows}  # one partition: no copy
        else:
            groups = rows.partition_by(keys, as_dict=True, maintain_order=True)
        for part_key, part in groups.items():
            arrow = part.select(self.spec.data_columns).to_arrow(compat_level=pl.CompatLevel.oldest())
            arrow = arrow.cast(self.arrow_schema)
            writer, path = self.writers.get((part_key, key)) or self._open(part_key, key)
            writer.write_table(arrow, row_group_size=row_group_rows(arrow))
            self.rows[path] += arrow.num_rows
            self.writers[(part_key, key)] = (writer, path)
            if self.rows[path] >= ROWS_PER_FILE:
                writer.close()
                del self.writers[(part_key, key)]

    def _open(self, part_key: tuple, key: str) -> tuple[pq.ParquetWriter, str]:
        directory = "/".join([self.dir, *partition_folders(self.spec, part_key), f"{SOURCE_FOLDER}={key}"])
        self.fs.create_dir(directory, recursive=True)
        path = f"{directory}/part-{uuid.uuid4().hex[:8]}-{len(self.rows):05d}.zstd.parquet"
        self.rows[path] = 0
        return pq.ParquetWriter(self.fs.open_output_stream(path), self.arrow_schema, compression="zstd"), path

    @property
    def files(self) -> list[str]:
        """Every file written and kept."""
        return list(self.rows)

    @property
    def partitions(self) -> list[tuple]:
        """The partitions the kept files lie in (from their folders), sorted."""
        return staged_partitions(self.spec.name, self.dir, self.files)

    def discard(self, key: str) -> None:
        """Drop everything written for the input `key` (a file rejected whole after some of its rows)."""
        for part_key, source in [k for k in self.writers if k[1] == key]:
            self.writers.pop((part_key, source))[0].close()
        marker = f"/{SOURCE_FOLDER}={key}/"
        for path in [p for p in self.files if marker in p]:
            self.fs.delete_file(path)
            del self.rows[path]

    def close(self) -> list[str]:
        """Close the open files; returns every file written."""
        for writer, _ in self.writers.values():
            writer.close()
        self.writers.clear()
        return self.files


def staged_partitions(table_name: str, staging: str, files: Iterable[str]) -> list[tuple]:
    """The partitions that staged `files` lie in, from their folders under `staging`, sorted."""
    spec = table(table_name)
    found = {tuple(partition_values(p[len(staging) :], spec)[0][c] for c in spec.partition_by) for p in files}
    return sorted(found, key=str)


@dataclass
class CommitPlan:
    """Everything an ingest will commit, as plain data (it is stored in the run's journal)."""

    table: str
    run_id: str
    sources: list[str]
    data_files: list[str] = field(default_factory=list)
    data_remove: list[str] = field(default_factory=list)
    merge_keep: list[str] | None = None
    quarantine_files: list[str] = field(default_factory=list)
    quarantine_remove: list[str] = field(default_factory=list)
    read_version: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def app_id(self) -> str:
        return f"sidforge-ingest-{self.run_id}"


def files_of(
    live: pl.DataFrame,
    keys: Iterable[str],
    partitions: Sequence[Mapping[str, str]] = (),
    within: Mapping[frozenset, Collection[str]] | None = None,
) -> pl.DataFrame:
    """Of the live files `live` (as `Lake.files` lists them), those written from the inputs `keys`, every file
    of `partitions`, and the files of the keys `within[partition]` that lie in that partition (a partition as
    `partition_id`)."""
    if not live.height:
        return pl.DataFrame(schema={"path": pl.String, "num_records": pl.Int64})
    wanted = set(keys)
    columns = [c for c in live.columns if c.startswith("partition.")]
    names = [c.removeprefix("partition.") for c in columns]
    found = [key_of_file(p) for p in live["path"]]
    rows = live.select(columns).iter_rows() if columns else iter([()] * live.height)
    scoped = [
        key is not None and key in (within or {}).get(partition_id(zip(names, values, strict=True)), ())
        for key, values in zip(found, rows, strict=True)
    ]
    mine = pl.lit(pl.Series([k in wanted or s for k, s in zip(found, scoped, strict=True)], dtype=pl.Boolean))
    for part in partitions:
        mine = mine | pl.all_horizontal(pl.col(f"partition.{c}") == v for c, v in part.items()).fill_null(False)
    return live.filter(mine)


def partition_id(values: Iterable[tuple[str, object]]) -> frozenset:
    """A partition as a set of (column, value) pairs: the same whatever order the columns come in."""
    return frozenset((c, None if v is None else str(v)) for c, v in values)


def apply(lake: Lake, plan: CommitPlan, *, check: bool = True) -> int:
    """Make the plan's data commit, then its quarantine commit; returns the data table's version.

    With `check`, the data commit fails with ConcurrentWriteError when another writer touched the same
    partitions since `plan.read_version`.
    """
    crash_point("before-data-commit")
    if plan.merge_keep is not None:
        fs = lake.filesystem()[0]
        frames = [
            to_frame(pq.read_table(f, filesystem=fs))
            for f in plan.data_files
            if fs.get_file_info(f).type == pafs.FileType.File
        ]
        spec = table(plan.table)
        frame = pl.concat(frames) if frames else to_frame(spec.schema.empty_table())
        version = lake.merge(
            plan.table,
            frame.select(spec.schema.names),
            run_id=plan.run_id,
            sources=plan.sources,
            keep=plan.merge_keep,
            app_id=plan.app_id,
        )
    else:
        version = lake.commit_files(
            plan.table,
            plan.data_files,
            run_id=plan.run_id,
            sources=plan.sources,
            remove=plan.data_remove,
            app_id=plan.app_id,
            extra=plan.extra,
            read_version=plan.read_version if check else None,
        )
    crash_point("after-data-commit")
    lake.commit_files(
        "quarantine",
        plan.quarantine_files,
        run_id=plan.run_id,
        sources=plan.sources,
        remove=plan.quarantine_remove,
        app_id=plan.app_id,
    )
    crash_point("after-quarantine-commit")
    return version


def recover(lake: Lake) -> list[str]:
    """Finish the commits of dead runs that had planned them, drop dead runs' staging; returns their run ids."""
    done = []
    for intent in journal.pending(lake):
        if intent.alive():
            continue
        if intent.state == "committing":
            apply(lake, CommitPlan(**intent.plan), check=False)
        journal.clear(lake, intent)
        done.append(intent.run_id)
    return done

"""A lake table streamed as Arrow record batches, one live file at a time: memory bounded by a batch, never the
table. Files come from the Delta log (never a listing); each batch has the catalog's types and its partition
columns filled in from the log. Spark tasks read their files through the same `read_file`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lake import storage
from lake.catalog import table
from lake.delta_paths import file_location
from lake.frames import to_frame
from lake.lake import Lake

BATCH_ROWS = 65_536


def fields_of(name: str, columns: Sequence[str] | None = None) -> pa.Schema:
    """The catalog fields of table `name` (all, or `columns` in that order)."""
    spec = table(name)
    return pa.schema([spec.schema.field(c) for c in columns or spec.schema.names])


def read_file(
    uri: str,
    partition: Mapping[str, str | None],
    fields: pa.Schema,
    options: dict[str, str] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """The `fields` of one data file's rows, batch by batch: stored columns cast to the catalog types, partition
    columns from `partition`, nulls where the file predates a column."""
    fs, path = storage.filesystem(uri, options)
    with fs.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        stored = [f.name for f in fields if f.name in parquet.schema_arrow.names and f.name not in partition]
        for part in parquet.iter_batches(batch_size=batch_rows, columns=stored):
            yield pa.RecordBatch.from_arrays([_column(part, f, partition) for f in fields], schema=fields)


def live_files(
    lake: Lake, name: str, where: Mapping[str, str] | None = None, version: int | None = None
) -> pl.DataFrame:
    """The live files of table `name` (as `Lake.files` lists them, as of `version`) in the partitions matching
    `where` (partition columns only)."""
    spec = table(name)
    unknown = set(where or {}) - set(spec.partition_by)
    if unknown:
        raise ValueError(f"{name}: where= takes partition columns ({', '.join(spec.partition_by)}), not {unknown}")
    files = lake.files(name, version)
    for column, value in (where or {}).items():
        files = files.filter(pl.col(f"partition.{column}") == value) if files.height else files
    return files


def table_batches(
    lake: Lake,
    name: str,
    *,
    columns: Sequence[str] | None = None,
    where: Mapping[str, str] | None = None,
    version: int | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Stream table `name` (as of `version`, only the partitions matching `where`, only `columns`)."""
    spec = table(name)
    fields = fields_of(name, columns)
    files = live_files(lake, name, where, version)
    if not files.height:
        return
    keys = [f"partition.{c}" for c in spec.partition_by]
    for row in files.select("path", *keys).iter_rows():
        partition = dict(zip(spec.partition_by, (None if v is None else str(v) for v in row[1:]), strict=True))
        yield from read_file(file_location(lake.uri(name), row[0]), partition, fields, lake.storage_options, batch_rows)


def matching_rows(
    lake: Lake, name: str, keys: pl.DataFrame, chunk_rows: int, columns: Sequence[str] | None = None
) -> Iterator[pl.DataFrame]:
    """The rows of table `name` whose values of `keys`' columns are among `keys`' rows, in chunks of about
    `chunk_rows` rows, from one streaming pass (memory: one chunk and one batch)."""
    on, buffered, held = keys.columns, [], 0
    for batch in table_batches(lake, name, columns=columns, batch_rows=min(chunk_rows, BATCH_ROWS)):
        found = to_frame(batch).join(keys, on=on, how="semi", nulls_equal=False)
        if found.height:
            buffered.append(found)
            held += found.height
        if held >= chunk_rows:
            yield pl.concat(buffered)
            buffered, held = [], 0
    if buffered:
        yield pl.concat(buffered)


def table_rows(lake: Lake, name: str, where: Mapping[str, str] | None = None) -> int:
    """Rows of table `name` in the partitions matching `where`, from the log's statistics (no file is read)."""
    files = live_files(lake, name, where)
    return int(files["num_records"].sum()) if files.height else 0


def _column(part: pa.RecordBatch, field: pa.Field, partition: Mapping[str, str | None]) -> pa.Array:
    """A catalog column of a file's batch: its partition value repeated, the stored column cast to the catalog
    type, or nulls where the file predates the column."""
    if field.name in partition:
        return pa.array([partition[field.name]] * part.num_rows, pa.string()).cast(field.type)
    if field.name in part.schema.names:
        return part.column(field.name).cast(field.type)
    return pa.nulls(part.num_rows, field.type)

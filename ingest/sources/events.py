"""Event logs (user_id, item_id, behavior, timestamp) in CSV or Parquet, validated into `interactions`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from ingest.sources.csvblocks import iter_csv_blocks, resolve_columns
from ingest.sources.limits import Limits
from ingest.sources.lines import SourceError, Span, check_columns
from ingest.sources.records import Parsed, split_checked, utf8_rejects
from lake import storage
from lake.catalog import BEHAVIORS, today
from lake.frames import to_frame

COLUMNS = {
    "user_id": ("user_id", "user", "uid"),
    "item_id": ("item_id", "item", "iid", "base62_string"),
    "behavior": ("behavior", "behavior_type", "event", "action"),
    "timestamp": ("timestamp", "event_ts", "ts", "time", "event_time"),
}
EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
_TEXT_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")
DEDUP_KEYS = ("user_id", "item_id", "behavior", "event_ts")
ROW_COLUMNS = ["user_id", "item_id", "behavior", "event_ts", "ds", "source", "line"]


def parse_timestamp(text: pl.Expr, *, iso: bool = True) -> pl.Expr:
    """UTC microsecond timestamps from epoch seconds, milliseconds or microseconds, or ISO-8601 text.

    With `iso=False` only epoch numbers are parsed (the fast path for columns known to be all digits).
    """
    value = text.cast(pl.Int64, strict=False)
    digits = value.is_not_null()
    magnitude = value.abs()
    micros = (
        pl.when(magnitude >= 10**14)
        .then(value)
        .when(magnitude >= 10**11)
        .then(value * 1_000)
        .otherwise(value * 1_000_000)
    )
    epoch = pl.when(digits).then(micros.cast(pl.Datetime("us", "UTC")))
    if not iso:
        return epoch
    return epoch.otherwise(
        pl.coalesce([text.str.to_datetime(f, time_unit="us", time_zone="UTC", strict=False) for f in _TEXT_FORMATS])
    )


def _validate(frame: pl.DataFrame, *, source: str | Path, ds: str | None, latest: dt.datetime, raw: pl.Expr) -> Parsed:
    event_ds = pl.col("event_ts").dt.date().cast(pl.String)
    checks: list[tuple[pl.Expr, pl.Expr | str]] = [
        (pl.col("reason").is_not_null(), pl.col("reason")),
        (pl.col("user_id").fill_null("") == "", "empty user_id"),
        (pl.col("item_id").fill_null("") == "", "empty item_id"),
        (
            ~pl.col("behavior").is_in(BEHAVIORS),
            pl.format(
                "unknown behavior '{}' (expected one of {})",
                pl.col("behavior").fill_null(""),
                pl.lit(", ".join(BEHAVIORS)),
            ),
        ),
        (pl.col("event_ts").is_null(), pl.format("unparseable timestamp '{}'", pl.col("ts_text").fill_null(""))),
        (
            (pl.col("event_ts") < EARLIEST) | (pl.col("event_ts") > latest),
            pl.format(
                "timestamp {} out of range [{}, {}]",
                pl.col("ts_text"),
                pl.lit(EARLIEST.isoformat()),
                pl.lit(latest.isoformat()),
            ),
        ),
    ]
    if ds is not None:
        day = dt.datetime.fromisoformat(ds).replace(tzinfo=dt.UTC)
        outside = (pl.col("event_ts") < day) | (pl.col("event_ts") >= day + dt.timedelta(days=1))
        checks.append(
            (outside, pl.format("timestamp {} is outside the partition day {}", pl.col("ts_text"), pl.lit(ds)))
        )
    partition = pl.lit(ds) if ds is not None else pl.coalesce(event_ds, pl.lit(today()))
    checked = frame.with_columns(ds=partition, source=pl.lit(storage.name_of(source)))
    rows, rejects = split_checked(
        checked, checks=checks, table_name="interactions", source=source, raw=raw, ds=pl.col("ds"), columns=ROW_COLUMNS
    )
    return Parsed("interactions", rows, rejects)


def read_events(
    path: str | Path,
    *,
    ds: str | None = None,
    now: dt.datetime | None = None,
    span: Span | None = None,
    limits: Limits | None = None,
) -> Iterator[Parsed]:
    """Stream an event log (CSV with a header, or Parquet) as validated `interactions` blocks (CSV: one `span`).

    Timestamps must fall between 1990 and `now` plus a day, and inside day `ds` when one is given.
    """
    latest = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=1)
    fallback_ds = ds or today()
    if str(path).endswith(".parquet"):
        yield from _read_parquet(path, ds=ds, latest=latest, limits=limits)
        return
    for block in iter_csv_blocks(path, COLUMNS, span=span, limits=limits):
        epoch_only = block.frame.select(pl.col("timestamp").cast(pl.Int64, strict=False).is_not_null().all()).item()
        frame = block.frame.with_columns(
            ts_text=pl.col("timestamp"), event_ts=parse_timestamp(pl.col("timestamp"), iso=not epoch_only)
        )
        parsed = _validate(frame, source=path, ds=ds, latest=latest, raw=block.raw)
        bad = utf8_rejects(path, block.bad_utf8, fallback_ds)
        yield Parsed("interactions", parsed.rows, pl.concat([parsed.rejects, bad]), block.blank)


def _read_parquet(path: str | Path, *, ds: str | None, latest: dt.datetime, limits: Limits | None) -> Iterator[Parsed]:
    try:
        handle = pq.ParquetFile(storage.open_input(path))
    except OSError as exc:
        raise SourceError(f"cannot read {path} as Parquet: {exc}") from exc
    check_columns(path, handle.metadata.num_columns, limits)
    positions = resolve_columns(path, handle.schema_arrow.names, COLUMNS, limits=limits)
    names = {name: handle.schema_arrow.names[pos] for name, pos in positions.items()}
    first = 1
    for batch in handle.iter_batches(batch_size=1 << 20, columns=list(names.values())):
        frame = to_frame(batch).rename({v: k for k, v in names.items()})
        ts = frame["timestamp"]
        if ts.dtype.is_temporal():
            event_ts = pl.col("timestamp").cast(pl.Datetime("us", "UTC"))
        else:
            event_ts = parse_timestamp(pl.col("timestamp").cast(pl.String))
        frame = frame.with_row_index("line", offset=first).with_columns(
            pl.col("line").cast(pl.Int64),
            pl.col("user_id", "item_id", "behavior").cast(pl.String).str.strip_chars(),
            ts_text=pl.col("timestamp").cast(pl.String),
            event_ts=event_ts,
            reason=pl.lit(None, pl.String),
        )
        first += batch.num_rows
        raw = pl.struct("user_id", "item_id", "behavior", pl.col("ts_text").alias("timestamp")).struct.json_encode()
        yield _validate(frame, source=path, ds=ds, latest=latest, raw=raw)

"""Quarantine records written outside an ingest: a step that checks rows one by one (e.g. the image encoder)
replaces its earlier records for the rows it looked at again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from lake.lake import Lake, sql_literal


def replace_records(
    lake: Lake, table_name: str, source: str, checked: Sequence[str], rejects: Sequence[tuple[str, str]], run_id: str
) -> int | None:
    """Replace the quarantine records of `table_name` from `source` whose raw key is among `checked` with
    `rejects` (raw key, reason): a key that fails again keeps one record, one that now passes loses its record.
    Returns the commit's version, None when there was nothing to write or remove."""
    mine = (pl.col("table") == table_name) & (pl.col("source_file") == source) & pl.col("raw").is_in(list(checked))
    earlier = lake.scan("quarantine").filter(mine).select("raw").collect()["raw"]
    failing = sorted({*earlier, *(raw for raw, _ in rejects)})
    if not failing:
        return None
    now = dt.datetime.now(dt.UTC)
    frame = pl.DataFrame(
        {
            "source_file": source,
            "line": None,
            "raw": [r[0] for r in rejects],
            "reason": [r[1] for r in rejects],
            "run_id": run_id,
            "quarantined_at": now,
            "table": table_name,
            "ds": now.date().isoformat(),
        },
        schema_overrides={"line": pl.Int64},
    )
    where = (
        f'"table" = {sql_literal(table_name)} AND source_file = {sql_literal(source)} '
        f"AND raw IN ({', '.join(map(sql_literal, failing))})"
    )
    return lake.overwrite("quarantine", frame, run_id=run_id, where=where, sources=[source])

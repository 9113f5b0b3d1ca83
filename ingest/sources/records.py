"""What a source reader yields: rows for a table and the rejected records with their reasons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from lake.catalog import table

Checks = Sequence[tuple[pl.Expr, pl.Expr | str]]
REJECT_SCHEMA = pl.Schema(
    {"source_file": pl.String(), "line": pl.Int64(), "raw": pl.String(), "reason": pl.String(), "ds": pl.String()}
)


@dataclass(frozen=True)
class Parsed:
    """One block of one source file: `rows` ready for the table (plus `line`), `rejects` for quarantine."""

    table: str
    rows: pl.DataFrame
    rejects: pl.DataFrame
    blank_lines: int = 0
    missing_images: int = 0

    @property
    def records(self) -> int:
        """Records read in this block (blank lines are not records)."""
        return self.rows.height + self.rejects.height


def first_failure(checks: Checks) -> pl.Expr:
    """The reason of the first failing check (condition true means bad), or null when all pass."""
    expr: pl.Expr | None = None
    for bad, reason in reversed(checks):
        reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
        expr = pl.when(bad).then(reason_expr).otherwise(expr if expr is not None else pl.lit(None, pl.String))
    assert expr is not None
    return expr


def split_checked(
    frame: pl.DataFrame,
    *,
    checks: Checks,
    table_name: str,
    source: str | Path,
    raw: pl.Expr,
    ds: pl.Expr | str,
    columns: Sequence[str],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split rows into good rows (`columns`) and quarantine records with the first failing check's reason.

    Reasons (and raw text) are rendered for the failing rows only, so clean data pays for the checks alone.
    """
    table(table_name)
    marked = frame.with_columns(_failing=pl.any_horizontal([bad.fill_null(False) for bad, _ in checks]))
    if marked["_failing"].any():
        good = marked.filter(~pl.col("_failing")).select(columns)
        bad = marked.filter(pl.col("_failing")).with_columns(reason=first_failure(checks))
    else:  # a clean block: no copy through a filter
        good = frame.select(columns)
        bad = marked.clear().with_columns(reason=pl.lit(None, pl.String))
    ds_expr = pl.lit(ds) if isinstance(ds, str) else ds
    rejects = bad.select(
        source_file=pl.lit(str(source)),
        line=pl.col("line").cast(pl.Int64),
        raw=raw.cast(pl.String),
        reason=pl.col("reason"),
        ds=ds_expr.cast(pl.String),
    )
    return good, rejects


INVALID_UTF8 = "invalid UTF-8"


def utf8_rejects(source: str | Path, lines: Sequence[tuple[int, str]], ds: str) -> pl.DataFrame:
    """Quarantine records for lines that are not valid UTF-8 (line number, raw text cut to 512 characters)."""
    return reject_frame(source, [(n, text[:512], INVALID_UTF8) for n, text in lines], ds)


def reject_frame(source: str | Path, records: Sequence[tuple[int | None, str | None, str]], ds: str) -> pl.DataFrame:
    """Quarantine records from (line, raw text, reason) tuples."""
    return pl.DataFrame(
        {
            "source_file": [str(source)] * len(records),
            "line": [r[0] for r in records],
            "raw": [r[1] for r in records],
            "reason": [r[2] for r in records],
            "ds": [ds] * len(records),
        },
        schema=REJECT_SCHEMA,
    )

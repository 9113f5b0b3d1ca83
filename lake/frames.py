"""Arrow data as Polars frames, typed: the one conversion the lake's readers and engines share."""

from __future__ import annotations

import polars as pl
import pyarrow as pa


def to_frame(data: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    """A Polars DataFrame of an Arrow table or record batch (zero-copy where Arrow allows)."""
    frame = pl.from_arrow(data)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"expected a table, got {type(frame).__name__}")
    return frame

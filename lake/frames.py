"""Arrow data as Polars frames, typed: the one conversion the lake's readers and engines share."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa


def to_frame(data: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    """A Polars DataFrame of an Arrow table or record batch (zero-copy where Arrow allows)."""
    frame = pl.from_arrow(data)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"expected a table, got {type(frame).__name__}")
    return frame


def list_matrix(column: pl.Series) -> np.ndarray:
    """A list column of integers (codes) as an (rows, longest list) int32 matrix, with no Python object a value."""
    width = int(column.list.len().max() or 0)  # type: ignore[arg-type]  # the max of lengths is an int
    return column.list.to_array(width).to_numpy().astype(np.int32, copy=False).reshape(len(column), width)

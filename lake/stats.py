"""Delta file statistics (numRecords, min, max, null counts) read from a Parquet footer."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _json_value(value: Any, arrow_type: pa.DataType) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes) or (isinstance(value, str) and len(value) >= 64):
        return None  # binary, or a string a writer may have truncated: no usable bound
    if pa.types.is_floating(arrow_type) and math.isnan(value):  # NaN has no order
        return None
    return value


def parquet_stats(metadata: pq.FileMetaData, schema: pa.Schema) -> str:
    """Delta `stats` JSON for one Parquet file of a table with `schema`, from its footer (flat columns only)."""
    flat = {f.name: f.type for f in schema if not pa.types.is_nested(f.type)}
    mins: dict[str, object] = {}
    maxs: dict[str, object] = {}
    nulls: dict[str, int] = {}
    complete: set[str] = set(flat)
    for rg in range(metadata.num_row_groups):
        group = metadata.row_group(rg)
        for ci in range(group.num_columns):
            col = group.column(ci)
            name = col.path_in_schema
            if name not in flat:
                continue
            st = col.statistics
            if st is None:
                complete.discard(name)
                continue
            nulls[name] = nulls.get(name, 0) + (st.null_count or 0)
            if not st.has_min_max:
                if group.num_rows > (st.null_count or 0):
                    complete.discard(name)
                continue
            lo, hi = _json_value(st.min, flat[name]), _json_value(st.max, flat[name])
            if lo is None or hi is None:
                complete.discard(name)
                continue
            mins[name] = lo if name not in mins else min(mins[name], lo)
            maxs[name] = hi if name not in maxs else max(maxs[name], hi)
    return json.dumps(
        {
            "numRecords": metadata.num_rows,
            "minValues": {k: v for k, v in mins.items() if k in complete},
            "maxValues": {k: v for k, v in maxs.items() if k in complete},
            "nullCount": nulls,
        }
    )

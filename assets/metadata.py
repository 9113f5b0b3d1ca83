"""What the UI shows of a table asset: row counts, the column schema, a small preview, readable lists and floats."""

from collections.abc import Mapping, Sequence

import polars as pl
from dagster import MetadataValue, TableColumn, TableSchema

from lake import Lake
from lake.catalog import TableSpec, table

PREVIEW_ROWS = 5
CELL_CHARS = 40


def rounded(value: float, digits: int = 4) -> float:
    """A float to `digits` significant digits, for the UI."""
    return float(f"{value:.{digits}g}")


def _cell(value: object) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, bytes):
        text = f"<{len(value):,} bytes>"
    elif isinstance(value, list):
        shown = ", ".join(_cell(v) for v in value[:4])
        text = f"[{shown}{', …' if len(value) > 4 else ''}] ({len(value)})" if len(value) > 4 else f"[{shown}]"
    else:
        text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def markdown_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> MetadataValue:
    """Rows as a Markdown table (floats to 4 significant digits, long values cut, lists shortened)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    if not rows:
        return MetadataValue.md("(none)")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return MetadataValue.md("\n".join(lines))


def per_level(values: Mapping[str, Sequence[float]]) -> MetadataValue:
    """Per-level figures (one list per name) as a Markdown table with a row per level."""
    levels = max((len(v) for v in values.values()), default=0)
    return markdown_table(
        [{"level": level + 1, **{k: v[level] for k, v in values.items() if level < len(v)}} for level in range(levels)],
        ["level", *values],
    )


def bullets(values: Sequence[object]) -> MetadataValue:
    """A list as Markdown bullets (whole values: paths, partitions)."""
    return MetadataValue.md("\n".join(f"- `{v}`" for v in values) if values else "(none)")


def column_schema(spec: TableSpec) -> TableSchema:
    """The table's columns with their types and descriptions (the catalog's), as the Dagster UI shows them."""
    return TableSchema(columns=[TableColumn(f.name, str(f.type), spec.columns[f.name]) for f in spec.schema])


def table_metadata(store: Lake, name: str, where: pl.Expr | None = None) -> dict[str, object]:
    """`dagster/row_count`, `dagster/column_schema`, the table's location and a preview of its rows (those
    matching `where`, whose count is `dagster/partition_row_count`, when given)."""
    spec = table(name)
    scan = store.scan(name)
    total = store.row_count(name)
    rows = scan.filter(where) if where is not None else scan
    preview = rows.head(PREVIEW_ROWS).collect()
    metadata: dict[str, object] = {
        "dagster/row_count": total,
        "dagster/column_schema": column_schema(spec),
        "dagster/uri": MetadataValue.path(store.uri(name)),
        "preview": markdown_table(preview.to_dicts(), preview.columns),
    }
    if where is not None:
        metadata["dagster/partition_row_count"] = rows.select(pl.len()).collect().item()
    return metadata

"""Incremental runs: only items that are new, or whose content changed, for a given model."""

from __future__ import annotations

import polars as pl


def items_to_encode(items: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """Rows of `items` (with item_id, content_hash) that `existing` embeddings do not cover with the same hash."""
    return items.join(
        existing.select("item_id", "content_hash"), on=["item_id", "content_hash"], how="anti", nulls_equal=False
    )

"""Item co-occurrence pairs from user sequences: consecutive items of a sequence, counted."""

from __future__ import annotations

import polars as pl


def item_pairs(sequences: pl.LazyFrame) -> pl.LazyFrame:
    """(item_id, pair_item_id, weight) for each item followed by another in a sequence (history, then target).

    Only sequences in item space are used (GR instruction data is already in SID space).
    """
    steps = (
        sequences.filter(pl.col("id_space") == "item")
        .select(items=pl.concat_list("history", "target"))
        .with_row_index("seq")
        .explode("items")
        .with_columns(pair_item_id=pl.col("items").shift(-1).over("seq"))
        .filter(pl.col("pair_item_id").is_not_null() & (pl.col("items") != pl.col("pair_item_id")))
    )
    return (
        steps.group_by(pl.col("items").alias("item_id"), "pair_item_id")
        .agg(weight=pl.len().cast(pl.Float32))
        .sort("item_id", "pair_item_id")
    )

"""Incremental runs: only items that are new, or whose content changed, for a given model."""

from __future__ import annotations

import polars as pl

from embeddings.encode import EncodeResult


def items_to_encode(items: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """Rows of `items` (with item_id, content_hash) that `existing` embeddings do not cover with the same hash."""
    return items.join(
        existing.select("item_id", "content_hash"), on=["item_id", "content_hash"], how="anti", nulls_equal=False
    )


def embedding_rows(result: EncodeResult, chunk: pl.DataFrame, source: str, run_id: str, model: str) -> pl.DataFrame:
    """`item_embeddings` rows of the items `result` encoded, with the content hash each had in `chunk`."""
    return (
        pl.DataFrame(
            {
                "item_id": pl.Series(result.item_ids, dtype=pl.String),
                "modalities": result.modalities.tolist(),
                "embedding": pl.Series(result.vectors.tolist(), dtype=pl.List(pl.Float32)),
            }
        )
        .join(chunk.select("item_id", "content_hash"), on="item_id", how="left")
        .with_columns(
            dim=pl.lit(result.vectors.shape[1], pl.Int32),
            source=pl.lit(source),
            run_id=pl.lit(run_id),
            model=pl.lit(model),
        )
    )

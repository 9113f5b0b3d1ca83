"""Jobs: daily ingest of interactions, and the catalogue ingest (sequences, items, embeddings, pairs)."""

from dagster import AssetSelection, define_asset_job

ingest_daily = define_asset_job(
    "ingest_daily", selection=AssetSelection.assets("interactions"),
    description="Ingest one day of user events into `interactions` (replaces that day).",
)
ingest_catalog = define_asset_job(
    "ingest_catalog",
    selection=AssetSelection.assets("user_sequences", "items", "precomputed_embeddings", "item_pairs"),
    description="Ingest AL-GR sequences, the item catalogue and precomputed embeddings; rebuild item pairs.",
)

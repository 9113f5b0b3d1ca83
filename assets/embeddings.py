"""Embedding assets: OpenCLIP item embeddings (incremental) and the collaborative alignment projection."""

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, asset

from assets.errors import cause_first
from assets.ingest import item_pairs, items
from assets.metadata import table_metadata
from assets.resources import EncoderResource, LakeResource
from embeddings.align import (
    AlignConfig,
    load_projection,
    partner_in_neighbours,
    project,
    projection_bytes,
    train_projection,
)
from embeddings.encode import EncodeStats, encode_items
from embeddings.incremental import embedding_rows, items_to_encode
from embeddings.model import load_encoder, model_id
from lake import storage
from lake.progress import ProgressLines
from lake.quarantine import replace_records
from lake.table_stream import matching_rows

GROUP = "embeddings"


class EmbeddingConfig(Config):
    """How image and text embeddings are fused (a `projection` file for fusion='projection'), and how many items
    are encoded and committed at a time."""

    fusion: str = "concat"
    projection: str | None = None
    chunk_items: int = 50_000  # items encoded and committed together: what the driver holds at once


class AlignmentConfig(Config):
    """Base embeddings to align and the InfoNCE settings."""

    base_model: str = "algr-item-emb"
    epochs: int = 30
    temperature: float = 0.05
    device: str = "auto"
    seed: int = 0


@asset(deps=[items], group_name=GROUP, kinds={"pytorch", "delta"})
@cause_first
def item_embeddings(
    context: AssetExecutionContext, config: EmbeddingConfig, lake: LakeResource, encoder: EncoderResource
) -> MaterializeResult:
    """OpenCLIP embeddings of new or changed items (by content hash) for the configured model, encoded and
    committed `chunk_items` at a time from one streaming pass over the items table (a killed run resumes: the
    chunks it committed are up to date)."""
    store = lake.lake()
    run_id = context.run.run_id
    clip = load_encoder(encoder.spec())
    model = model_id(clip, config.fusion)
    keys = store.scan("items").select("item_id", "content_hash").collect()
    existing = store.scan("item_embeddings").filter(pl.col("model") == model).select("item_id", "content_hash")
    todo = items_to_encode(keys, existing.collect())
    base = {
        "model": model,
        "device": str(clip.device),
        "items": keys.height,
        "items_skipped": keys.height - todo.height,
    }
    if not todo.height:
        context.log.info(f"nothing new to encode for {model}: all {keys.height} items are up to date")
        return MaterializeResult(
            metadata={
                **table_metadata(store, "item_embeddings", pl.col("model") == model),
                **base,
                "items_encoded": 0,
                "items_quarantined": 0,
                "result": "nothing new, nothing written",
            }
        )
    projection = (
        load_projection(storage.read_bytes(config.projection, store.storage_options), config.projection)
        if config.projection
        else None
    )
    source = f"{store.uri('items')}@v{store.version('items')}"
    total, version, chunks, dim = EncodeStats(device=str(clip.device)), None, 0, 0
    columns = ["item_id", "title", "category", "image", "image_uri", "content_hash"]
    for chunk in matching_rows(store, "items", todo.select("item_id"), config.chunk_items, columns):
        result = encode_items(
            clip,
            chunk["item_id"].to_list(),
            chunk["title"].to_list(),
            chunk["category"].to_list(),
            chunk["image"].to_list(),
            chunk["image_uri"].to_list(),
            fusion=config.fusion,
            batch_size=encoder.batch_size,
            num_workers=encoder.num_workers,
            projection=projection,
        )
        rows = embedding_rows(result, chunk, source, run_id, model)
        if rows.height:
            version = store.merge("item_embeddings", rows, run_id=run_id, sources=[source])
        checked = chunk["item_id"].to_list()
        replace_records(
            store, "item_embeddings", f"{store.uri('items')}#model={model}", checked, result.rejects, run_id
        )
        total.add(result.stats)
        chunks, dim = chunks + 1, int(result.vectors.shape[1])
        context.log.info(f"{model}: {total.items:,} of {todo.height:,} items encoded ({chunks} chunks committed)")
    return MaterializeResult(
        metadata={
            **table_metadata(store, "item_embeddings", pl.col("model") == model),
            **base,
            "items_encoded": total.encoded,
            "items_text_only": total.text_only,
            "items_quarantined": total.quarantined,
            "images_per_second": round(total.images_per_second, 1),
            "seconds": round(total.seconds, 3),
            "oom_batch_halvings": total.oom_halvings,
            "final_batch_size": total.batch_size,
            "chunks": chunks,
            "dim": dim,
            "delta_version": version if version is not None else -1,
        }
    )


@asset(deps=[item_embeddings, item_pairs], group_name=GROUP, kinds={"pytorch", "delta"})
@cause_first
def aligned_embeddings(
    context: AssetExecutionContext, config: AlignmentConfig, lake: LakeResource
) -> MaterializeResult:
    """FORGE Eq. 2: a projection trained with InfoNCE on item_pairs over frozen embeddings, as model `<base>+align`."""
    store = lake.lake()
    run_id = context.run.run_id
    base = (
        store.scan("item_embeddings")
        .filter(pl.col("model") == config.base_model)
        .select("item_id", "embedding", "content_hash")
        .collect()
        .with_row_index("row")
    )
    if not base.height:
        raise ValueError(f"no embeddings of model {config.base_model!r} in item_embeddings to align")
    pairs = (
        store.scan("item_pairs")
        .collect()
        .join(base.select("item_id", left="row"), on="item_id")
        .join(base.select(pl.col("item_id").alias("pair_item_id"), right="row"), on="pair_item_id")
    )
    features = np.asarray(base["embedding"].to_list(), dtype=np.float32)
    left, right = pairs["left"].to_numpy(), pairs["right"].to_numpy()
    projection = train_projection(
        features,
        left,
        right,
        pairs["weight"].to_numpy(),
        AlignConfig(epochs=config.epochs, temperature=config.temperature, device=config.device, seed=config.seed),
        ProgressLines(context.log.info),
    )
    aligned = project(projection, features)
    model = f"{config.base_model}+align"
    storage.write_bytes(store.path("_models", f"{model}.pt"), projection_bytes(projection), store.storage_options)
    rows = base.select("item_id", "content_hash").with_columns(
        embedding=pl.Series(aligned.tolist(), dtype=pl.List(pl.Float32)),
        dim=pl.lit(aligned.shape[1], pl.Int32),
        modalities=pl.lit("aligned"),
        source=pl.lit(f"{config.base_model}+item_pairs"),
        run_id=pl.lit(run_id),
        model=pl.lit(model),
    )
    version = store.replace_partitions("item_embeddings", rows, run_id=run_id, sources=["item_pairs"])
    return MaterializeResult(
        metadata={
            **table_metadata(store, "item_embeddings", pl.col("model") == model),
            "model": model,
            "items": rows.height,
            "pairs": len(left),
            "delta_version": version,
            "pair_partner_in_top10_before": round(partner_in_neighbours(features, left, right), 4),
            "pair_partner_in_top10_after": round(partner_in_neighbours(aligned, left, right), 4),
        }
    )

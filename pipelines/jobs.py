"""Jobs: daily ingest of interactions, the catalogue ingest, the nightly SID rebuild, the collaborative alignment
of embeddings, lake maintenance."""

from dagster import AssetSelection, define_asset_job, in_process_executor, job

from assets import embeddings, ingest, probe, publish, quality, sids
from assets.maintenance import vacuum_lake

ingest_daily = define_asset_job(
    "ingest_daily",
    selection=AssetSelection.assets(ingest.interactions),
    description="Ingest one day of user events into `interactions` (each file replaces what it wrote before; "
    "config replace_partition empties the day first). Backfill a range of days from the UI or "
    "`dagster job backfill`.",
    executor_def=in_process_executor,  # one process: the GX context loads once, not per check step
)
ingest_catalog = define_asset_job(
    "ingest_catalog",
    selection=AssetSelection.groups(ingest.GROUP) - AssetSelection.assets(ingest.interactions),
    description="Ingest AL-GR sequences, the item catalogue and precomputed embeddings; rebuild item pairs.",
    executor_def=in_process_executor,
)
nightly_sid_rebuild = define_asset_job(
    "nightly_sid_rebuild",
    selection=AssetSelection.assets(
        ingest.user_sequences,
        ingest.items,
        ingest.precomputed_embeddings,
        embeddings.item_embeddings,
        sids.sid_codebooks,
        sids.item_sids,
        quality.published_sids,
        publish.gr_training_data,
        probe.gr_probe,
    ),
    description="Embed new or changed items, rebuild SIDs, run the blocking quality checks, publish the build "
    "and its training data (nothing is published when a check fails); with gr_probe's config enabled: true, "
    "train the GR probe on the published data.",
    executor_def=in_process_executor,  # one process: models and GX contexts load once, not per step
)

align_embeddings = define_asset_job(
    "align_embeddings",
    selection=AssetSelection.assets(embeddings.aligned_embeddings),
    description="Train the collaborative alignment projection (FORGE Eq. 2) on item_pairs over frozen embeddings "
    "(config base_model, default algr-item-emb) and write model `<base_model>+align`; a SID build uses "
    "it when sid_codebooks' embedding_model names it.",
)


@job(
    description="Weekly lake maintenance: finish or clean up killed runs, then remove table files no Delta "
    "version within the retention references, stale staging and unregistered published versions."
)
def lake_maintenance() -> None:
    """Vacuum the lake (config: retention_hours, dry_run)."""
    vacuum_lake()

"""The Dagster code location loaded by workspace.yaml."""

from dagster import Definitions, colored_console_logger, load_assets_from_modules

from assets import embeddings, ingest, probe, publish, quality, sids
from assets.quality import TABLE_CHECKS, sid_build_quality
from assets.resources import default_resources
from pipelines.jobs import align_embeddings, ingest_catalog, ingest_daily, lake_maintenance, nightly_sid_rebuild
from pipelines.loggers import asset_lines
from pipelines.schedules import maintenance_schedule, nightly_schedule
from pipelines.sensors import landing_sensor

ASSET_MODULES = [ingest, embeddings, sids, quality, publish, probe]
"""Every module that defines assets (what a Definitions for the nightly job must load)."""

defs = Definitions(
    assets=load_assets_from_modules(ASSET_MODULES),
    asset_checks=[*TABLE_CHECKS, sid_build_quality],
    jobs=[ingest_daily, ingest_catalog, nightly_sid_rebuild, align_embeddings, lake_maintenance],
    schedules=[nightly_schedule, maintenance_schedule],
    sensors=[landing_sensor],
    resources=default_resources(),
    loggers={"console": colored_console_logger, "asset_lines": asset_lines},
)

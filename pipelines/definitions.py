"""The Dagster code location loaded by workspace.yaml."""

from dagster import Definitions, load_assets_from_modules

from assets import embeddings, ingest, sids
from assets.resources import default_resources
from pipelines.jobs import ingest_catalog, ingest_daily

defs = Definitions(
    assets=load_assets_from_modules([ingest, embeddings, sids]),
    jobs=[ingest_daily, ingest_catalog],
    resources=default_resources(),
)

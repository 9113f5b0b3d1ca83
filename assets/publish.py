"""Publishing asset: sharded GR training data for the published SID build, after the quality gate."""

import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from assets.errors import cause_first
from assets.metadata import markdown_table, table_metadata
from assets.quality import published_sids
from assets.resources import EngineResource, LakeResource, SparkResource
from publish.training_data import publish_training_data


class PublishConfig(Config):
    """Where the examples come from and how they are sharded."""

    source: str = "user_sequences"
    dataset: str = "gr"
    rows_per_shard: int = 500_000
    test_days: list[str] = Field(default_factory=list)


@asset(deps=[published_sids], group_name="publish", kinds={"parquet", "delta"})
@cause_first
def gr_training_data(
    context: AssetExecutionContext,
    config: PublishConfig,
    lake: LakeResource,
    engine: EngineResource,
    spark: SparkResource,
) -> MaterializeResult:
    """Sharded GR training data for the published SID build (only after the quality gate passed)."""
    report = publish_training_data(
        lake.lake(),
        source=config.source,
        dataset=config.dataset,
        rows_per_shard=config.rows_per_shard,
        test_days=config.test_days,
        run_id=context.run.run_id,
        engine=engine.name(),
        spark_master=spark.url(),
    )
    manifest = report.published.manifest
    store = lake.lake()
    return MaterializeResult(
        metadata={
            **table_metadata(store, "published_datasets", pl.col("dataset") == config.dataset),
            "dataset": manifest["dataset"],
            "version": manifest["version"],
            "sid_build": manifest["sid_build"],
            "path": MetadataValue.path(str(report.published.path)),
            "examples": report.examples,
            "examples_per_split": markdown_table(
                [{"split": k, "examples": v["examples"]} for k, v in manifest["splits"].items()]
            ),
            "shards": len(manifest["shards"]),
            "bytes": sum(s["bytes"] for s in manifest["shards"]),
            "examples_without_target_sid": report.skipped_without_target_sid,
            "history_items_without_sid": report.history_unknown_items,
            "target_items_without_sid": report.target_unknown_items,
        }
    )

"""Publish GR training data from the lake: examples mapped to one SID build, sharded, registered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from builds.registry import TABLE as BUILDS_TABLE
from builds.registry import BuildRegistry
from lake.faults import crash_point
from lake.lake import Lake
from lake.settings import EngineName, check_engine
from publish.examples import from_interactions, from_sequences, map_to_sids, sid_map
from publish.shards import Prepared, Published, publish, registration

SOURCES = ("user_sequences", "interactions")


@dataclass
class PublishReport:
    """What a publish wrote and what it could not map."""

    published: Published
    examples: int
    skipped_without_target_sid: int
    history_unknown_items: int
    target_unknown_items: int
    version_row: int | None


def _check_test_days(lake: Lake, source: str, test_days: Sequence[str]) -> None:
    """Test days apply to interactions and must hold events: otherwise the test split would be silently empty."""
    if not test_days:
        return
    if source != "interactions":
        raise ValueError(f"test days apply to the interactions source, not {source} (its samples carry their split)")
    present = set(lake.scan("interactions").select(pl.col("ds").unique()).collect()["ds"].cast(pl.String))
    missing = sorted(set(test_days) - present)
    if missing:
        raise ValueError(
            f"test day {', '.join(missing)} holds no interactions in {lake.root} "
            f"(days present: {', '.join(sorted(present)) or 'none'})"
        )


def publish_training_data(
    lake: Lake,
    *,
    build_id: str | None = None,
    source: str = "user_sequences",
    dataset: str = "gr",
    rows_per_shard: int = 500_000,
    test_days: Sequence[str] = (),
    run_id: str = "cli",
    engine: EngineName = "polars",
    spark_master: str | None = None,
) -> PublishReport:
    """Examples from `source` mapped to `build_id` (default: the published build), as a new dataset version."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    root = lake.path("published")
    registry = BuildRegistry(lake)
    if build_id is None:
        current = registry.published()
        if current is None:
            raise ValueError("no published SID build: pass --build BUILD_ID or publish a build first")
        build_id = current.build_id
    sizes = registry.sizes(build_id)
    _check_test_days(lake, source, test_days)
    if check_engine(engine) == "spark":
        from lake.spark import spark_session
        from publish.spark_shards import prepare_with_spark

        spark = spark_session(spark_master)
        prepared = prepare_with_spark(spark, lake, source, build_id, sizes, test_days, rows_per_shard)
    else:
        raw = (
            from_sequences(lake.scan("user_sequences"))
            if source == "user_sequences"
            else from_interactions(lake.scan("interactions"), test_days)
        )
        examples = map_to_sids(raw.collect(), sid_map(lake.scan("item_sids"), build_id), sizes)
        prepared = Prepared.of_frame(examples, rows_per_shard, lake.storage_options)
    inputs = {source: lake.version(source), "item_sids": lake.version("item_sids"), BUILDS_TABLE: registry.version()}
    params = {"source": source, "test_days": sorted(test_days)}
    published = publish(prepared, root, dataset, build_id, sizes, inputs, params, rows_per_shard, lake.storage_options)
    crash_point("publish-after-manifest")
    known = (
        lake.scan("published_datasets")
        .filter((pl.col("dataset") == dataset) & (pl.col("version") == published.version))
        .collect()
        .height
    )
    version = (
        None
        if known
        else lake.merge("published_datasets", registration(published, run_id), run_id=run_id, sources=[published.path])
    )
    return PublishReport(
        published,
        prepared.contents.examples,
        prepared.skipped,
        prepared.history_unknown,
        prepared.target_unknown,
        version,
    )

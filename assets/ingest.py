"""Ingest assets: raw landing files into the lake's Delta tables, one library call each."""

import os

import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, asset

from assets.errors import cause_first
from assets.metadata import bullets, table_metadata
from assets.partitions import daily
from assets.resources import EngineResource, LakeResource, LandingResource, SparkResource
from ingest.pairs import item_pairs as build_item_pairs
from ingest.run import IngestReport, ingest
from ingest.sources.limits import Limits
from lake import Lake

GROUP = "ingest"


def _result(store: Lake, report: IngestReport, rows: pl.Expr | None) -> MaterializeResult:
    return MaterializeResult(
        metadata={
            **table_metadata(store, report.table, rows),
            "table": report.table,
            "engine": report.engine,
            "rows_read": report.rows_read,
            "rows_written": report.rows_written,
            "rows_quarantined": report.rows_quarantined,
            "rows_replaced": report.rows_replaced,
            "rows_existing": report.rows_existing,
            "replaced_partitions": bullets(
                [",".join(f"{k}={v}" for k, v in p.items()) for p in report.replaced_partitions]
            ),
            "inputs_without_valid_rows": bullets(report.empty_inputs),
            "blank_lines": report.blank_lines,
            "missing_images": report.missing_images,
            "delta_version": report.version if report.version is not None else -1,
            "seconds": round(report.seconds, 3),
            "rows_per_second": round(report.rows_read / report.seconds) if report.seconds else 0,
            "partitions": bullets([",".join(f"{k}={v}" for k, v in p.items()) for p in report.partitions]),
            "files": bullets(report.files),
        }
    )


class DayConfig(Config):
    """Whether a day's run also removes rows that other inputs wrote into that day, and whether it quarantines
    events the day already holds from other files (`duplicate of existing row`) instead of adding them."""

    replace_partition: bool = False
    dedupe_against_table: bool = False


def _ingest(
    context: AssetExecutionContext,
    lake: LakeResource,
    engine: EngineResource,
    spark: SparkResource,
    paths: list,
    fmt: str,
    ds: str | None = None,
    replace_partition: bool = False,
    dedupe_against_table: bool = False,
    rows: pl.Expr | None = None,
) -> MaterializeResult:
    """Ingest `paths`; the metadata previews the rows matching `rows` (this asset's share of its table)."""
    store = lake.lake()
    report = ingest(
        store,
        paths,
        fmt,
        ds=ds,
        engine=engine.name(),
        run_id=context.run.run_id,
        spark_master=spark.url(),
        replace_partition=replace_partition,
        dedupe_against_table=dedupe_against_table,
        limits=Limits.from_environment(os.environ),
    )
    context.log.info(
        f"{fmt}: read {report.rows_read}, wrote {report.rows_written}, "
        f"quarantined {report.rows_quarantined}, replaced {report.rows_replaced} rows these files "
        f"wrote before, into {report.table} v{report.version}; {report.rows_existing} rows already existed"
    )
    return _result(store, report, rows)


@asset(partitions_def=daily, group_name=GROUP, kinds={"delta", "polars"})
@cause_first
def interactions(
    context: AssetExecutionContext,
    config: DayConfig,
    lake: LakeResource,
    landing: LandingResource,
    engine: EngineResource,
    spark: SparkResource,
) -> MaterializeResult:
    """One day of user events from `<landing>/events/ds=<day>/`: each file replaces the rows it wrote before
    (config `replace_partition: true` empties the whole day first)."""
    day = context.partition_key
    return _ingest(
        context,
        lake,
        engine,
        spark,
        [landing.folder("events", f"ds={day}")],
        "events",
        ds=day,
        replace_partition=config.replace_partition,
        dedupe_against_table=config.dedupe_against_table,
        rows=pl.col("ds") == day,
    )


@asset(group_name=GROUP, kinds={"delta", "polars"})
@cause_first
def user_sequences(
    context: AssetExecutionContext,
    lake: LakeResource,
    landing: LandingResource,
    engine: EngineResource,
    spark: SparkResource,
) -> MaterializeResult:
    """AL-GR Origin-Sequence-Data files from `<landing>/algr/origin_behavior/`, stage days from file names."""
    return _ingest(context, lake, engine, spark, [landing.folder("algr", "origin_behavior")], "algr-sequences")


@asset(group_name=GROUP, kinds={"delta", "polars"})
@cause_first
def items(
    context: AssetExecutionContext,
    lake: LakeResource,
    landing: LandingResource,
    engine: EngineResource,
    spark: SparkResource,
) -> MaterializeResult:
    """The item catalogue (titles, categories, images) from `<landing>/items/`, merged by item id."""
    return _ingest(context, lake, engine, spark, [landing.folder("items")], "items")


@asset(group_name=GROUP, kinds={"delta", "polars"})
@cause_first
def precomputed_embeddings(
    context: AssetExecutionContext,
    lake: LakeResource,
    landing: LandingResource,
    engine: EngineResource,
    spark: SparkResource,
) -> MaterializeResult:
    """AL-GR Item-EMB vectors from `<landing>/algr/item_emb/` into `item_embeddings` (model algr-item-emb)."""
    return _ingest(
        context,
        lake,
        engine,
        spark,
        [landing.folder("algr", "item_emb")],
        "algr-item-emb",
        rows=pl.col("model") == "algr-item-emb",
    )


@asset(deps=[user_sequences], group_name=GROUP, kinds={"delta", "polars"})
@cause_first
def item_pairs(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    """Co-occurrence pairs (consecutive items in user sequences), recomputed in full."""
    store = lake.lake()
    pairs = build_item_pairs(store.scan("user_sequences")).with_columns(run_id=pl.lit(context.run.run_id)).collect()
    version = store.overwrite("item_pairs", pairs, run_id=context.run.run_id, sources=["user_sequences"])
    return MaterializeResult(
        metadata={
            **table_metadata(store, "item_pairs"),
            "rows_written": pairs.height,
            "delta_version": version,
            "total_weight": float(pairs["weight"].sum()),
        }
    )

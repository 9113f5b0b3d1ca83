"""Blocking quality checks: a Great Expectations suite per table, and the SID build gate before publishing."""

import warnings
from functools import cache

import numpy as np
import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    PreviewWarning,
    asset,
    asset_check,
)

from assets import embeddings as embedding_assets
from assets import ingest as ingest_assets
from assets import sids as sid_assets
from assets.errors import cause_first
from assets.metadata import bullets, markdown_table, per_level, rounded, table_metadata
from assets.resources import EngineResource, LakeResource, QualityResource, SparkResource
from assets.sids import build_summary
from builds.artifacts import load_model
from builds.drift import embeddings, item_ids, sample_of
from builds.registry import ASSIGNED, BuildRegistry, BuildStatus, SidBuild
from builds.registry import TABLE as BUILDS_TABLE
from lake import Lake
from lake.frames import list_matrix
from quality.evaluate import EvalSettings, evaluate_build, gallery_rows
from quality.expectations import Run, Validator
from quality.gate import evaluate
from quality.hitrate import sessions_from_ids
from quality.report import LEVEL_KEYS, SUMMARY_KEYS, markdown_summary, probe_figures, write_report
from quality.sid_metrics import occupancy
from quality.validation_report import latest_validations
from sid_index.rq import vectors_of

SID_QUALITY_CHECK = "sid_build_quality"


def _validator(store: Lake) -> Validator:
    """The process's Validator of the lake's reports: its GX context and checkpoints load once, not per check."""
    return _validator_at(store.path("_reports"), tuple(sorted((store.storage_options or {}).items())))


@cache
def _validator_at(reports: str, options: tuple[tuple[str, str], ...]) -> Validator:
    return Validator(reports, dict(options) or None)


def _sizes(store: Lake) -> dict[str, list[int]]:
    return {b.build_id: b.sizes for b in BuildRegistry(store).all()}


def _table_check(target: AssetsDefinition, table_name: str, name: str | None = None):
    """A blocking GX check of `table_name` after `target`; on a day-partitioned asset, of that day's rows."""
    partitions = target.partitions_def

    def check(
        context: AssetCheckExecutionContext, lake: LakeResource, engine: EngineResource, spark: SparkResource
    ) -> AssetCheckResult:
        store = lake.lake()
        validator = _validator(store)
        day = context.partition_key if context.has_partition_key else None
        run = Run(context.run.run_id, day)
        if engine.name() == "spark":
            from pyspark.sql import functions as F

            from lake.spark import read_table, spark_session

            frame = read_table(spark_session(spark.url()), store, table_name)
            frame = frame.filter(F.col("ds") == day) if day else frame
            outcome = validator.validate_spark(table_name, frame, _sizes(store), run)
        else:
            scan = store.scan(table_name)
            frame = (scan.filter(pl.col("ds") == day) if day else scan).collect()
            outcome = validator.validate(table_name, frame, _sizes(store), run=run)
        return AssetCheckResult(
            passed=outcome.success,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                **({"partition": day} if day else {}),
                "rows": outcome.rows,
                "validated_rows": outcome.validated_rows,
                "failed_expectations": markdown_table(
                    [{**f, "kwargs": ", ".join(f"{k}={v}" for k, v in f["kwargs"].items())} for f in outcome.failures],
                    ["expectation", "kwargs", "unexpected_count", "examples"],
                ),
                **{k.replace("_", " "): v for k, v in outcome.exact.items()},
                "validation_report": MetadataValue.path(outcome.report or ""),
                "data_docs": MetadataValue.path(outcome.docs or ""),
            },
        )

    with warnings.catch_warnings():  # partitioned asset checks: a preview feature of Dagster 1.13 (see docs/)
        warnings.simplefilter("ignore", PreviewWarning)
        return asset_check(
            asset=target,
            name=name or f"{table_name}_expectations",
            blocking=True,
            partitions_def=partitions,
            description=f"Great Expectations suite of the `{table_name}` table"
            + (" (the materialized day's rows)" if partitions else ""),
        )(cause_first(check))


TABLE_CHECKS = [
    _table_check(ingest_assets.interactions, "interactions"),
    _table_check(ingest_assets.interactions, "quarantine"),
    _table_check(ingest_assets.user_sequences, "user_sequences"),
    _table_check(ingest_assets.items, "items"),
    _table_check(ingest_assets.item_pairs, "item_pairs"),
    _table_check(ingest_assets.precomputed_embeddings, "item_embeddings", "precomputed_embeddings_expectations"),
    _table_check(embedding_assets.item_embeddings, "item_embeddings"),
    _table_check(embedding_assets.aligned_embeddings, "item_embeddings", "aligned_embeddings_expectations"),
    _table_check(sid_assets.sid_codebooks, "codebooks"),
    _table_check(sid_assets.sid_codebooks, BUILDS_TABLE),
    _table_check(sid_assets.item_sids, "item_sids"),
]


def _evaluate(store: Lake, build: SidBuild, settings: QualityResource) -> tuple[dict, np.ndarray]:
    """The build's metrics: SID counts over every item with an embedding (ids and codes in memory, a few dozen
    bytes an item), embedding figures on the gallery, whose vectors are picked from a stream of the table."""
    inputs = build.inputs
    stream = embeddings(store, inputs["embedding_model"])
    sids = (
        store.scan("item_sids")
        .filter(pl.col("build_id") == build.build_id)
        .select("item_id", "codes_raw", "codes")
        .filter(pl.col("item_id").is_in(item_ids(stream).implode()))
        .sort("item_id")
        .collect()
    )
    raw, codes = list_matrix(sids["codes_raw"]), list_matrix(sids["codes"])
    sequences = (
        store.scan("user_sequences")
        .filter(pl.col("id_space") == "item")
        .select("history", pl.col("target").list.first().alias("target"))
        .collect()
    )
    model = load_model(store, inputs["artifact"])
    rows = gallery_rows(len(codes), np.zeros(0, dtype=np.int64), settings.gallery_items, 0)
    ids = sids["item_id"].gather(rows).to_list()
    sessions = sessions_from_ids(
        sequences["history"].to_list(), sequences["target"].to_list(), ids, settings.hitrate_sessions
    )
    eval_settings = EvalSettings(
        k=settings.hitrate_k, sessions=settings.hitrate_sessions, gallery=settings.gallery_items, device=settings.device
    )
    vectors = vectors_of(sample_of(stream, rows, sids["item_id"]).select("embedding").to_arrow())
    metrics = evaluate_build(
        raw[rows], codes[rows], model.sizes, vectors, model.decode, sessions, eval_settings, build.sizes
    )
    return metrics, occupancy(codes, build.sizes)


@asset_check(
    asset=sid_assets.item_sids,
    name=SID_QUALITY_CHECK,
    blocking=True,
    description="FORGE's training-free SID metrics against configured thresholds; gates publishing",
)
@cause_first
def sid_build_quality(
    context: AssetCheckExecutionContext, lake: LakeResource, quality: QualityResource
) -> AssetCheckResult:
    """Evaluate the latest build; a failure records it as rejected and stops `published_sids`."""
    store = lake.lake()
    registry = BuildRegistry(store)
    build = registry.latest(*ASSIGNED)
    if build is None:
        return AssetCheckResult(passed=False, metadata={"reason": "no built SID build to evaluate"})
    metrics, counts = _evaluate(store, build, quality)
    result = evaluate(metrics, quality.thresholds())
    history = [
        (b.build_id, b.metrics) for b in registry.all() if b.method != "imported" and b.build_id != build.build_id
    ]
    history.append((build.build_id, metrics))
    report = write_report(
        store.path("_reports", "sid", build.build_id),
        build.build_id,
        metrics | probe_figures(build.metrics),
        counts,
        history,
        result.checks,
        result.limits,
        latest_validations(store.path("_reports", "validations"), store.storage_options),
        store.storage_options,
    )
    stored = {
        **build.metrics,
        **metrics,
        "checks": result.checks,
        "report": report,
        "failed_checks": result.failed,
    }
    status = build.status if result.passed else BuildStatus.REJECTED
    registry.mark(build, status, by=context.run.run_id, metrics=stored)
    return AssetCheckResult(
        passed=result.passed,
        metadata={
            "build_id": build.build_id,
            "status": str(status),
            "report": MetadataValue.path(str(report)),
            "summary": MetadataValue.md(markdown_summary(build.build_id, metrics, result.checks, str(report))),
            **{k: rounded(float(metrics[k])) for k in SUMMARY_KEYS},
            "per_level_raw_codes": per_level({k.removesuffix("_per_level"): metrics[k] for k in LEVEL_KEYS}),
            "failed_checks": bullets(result.failed),
        },
    )


@asset(deps=[sid_assets.item_sids], group_name=sid_assets.GROUP, kinds={"delta"})
@cause_first
def published_sids(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    """Publish the latest build that passed the gate; readers get the last published build by default."""
    store = lake.lake()
    registry = BuildRegistry(store)
    build = registry.latest(BuildStatus.BUILT)
    if build is None:
        current = registry.published()
        summary = build_summary(store, current.build_id) if current else {}
        return MaterializeResult(
            metadata={
                **table_metadata(store, BUILDS_TABLE),
                **summary,
                "published_build": current.build_id if current else "none",
                "result": "nothing new to publish",
            }
        )
    registry.mark(build, BuildStatus.PUBLISHED, by=context.run.run_id)
    return MaterializeResult(
        metadata={
            **table_metadata(store, BUILDS_TABLE),
            **build_summary(store, build.build_id),
            "published_build": build.build_id,
        }
    )

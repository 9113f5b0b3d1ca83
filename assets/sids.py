"""Semantic-ID assets: `sid_codebooks` trains a build, `item_sids` assigns every item and resolves collisions."""

import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np
import polars as pl
import pyarrow as pa
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from assets.embeddings import aligned_embeddings, item_embeddings
from assets.errors import cause_first
from assets.ingest import precomputed_embeddings
from assets.metadata import per_level, rounded, table_metadata
from assets.resources import EngineResource, LakeResource, SparkResource
from builds.artifacts import load_model, save_model
from builds.drift import (
    Embeddings,
    Stream,
    data_through,
    embeddings,
    fingerprint,
    item_count,
    item_ids,
    measure,
    sample_of,
)
from builds.lifecycle import Decision, Drift, DriftBounds, Mode, build_id, decide, same_inputs
from builds.registry import ASSIGNED, KEPT, BuildRegistry, BuildStatus, SidBuild
from lake import Lake
from lake.frames import to_frame
from lake.progress import ProgressLines
from quality.report import SUMMARY_KEYS
from sid_index.build import BuildConfig, Method, assign, churn, sample_rows, train
from sid_index.collisions import Policy
from sid_index.kmeans import BackendName
from sid_index.rq import vectors_of
from sid_index.rqvae import Preset

GROUP = "semantic_ids"


class SidBuildConfig(Config):
    """How the codebooks are trained (method, sizes, backend, device, seed) and from which embeddings.

    `mode`: `rebuild` always trains; `refresh` keeps the published codebooks (item_sids then assigns only
    new items to them); `auto` refreshes while the settings are those of the published build and the drift
    stays within bounds, and rebuilds otherwise: new items at most `max_new_share` of the catalogue,
    published items whose embedding changed since the build (a refresh keeps their SIDs) at most
    `max_changed_share`, and the new items' mean reconstruction error under the published codebooks at most
    `max_error_ratio` times the build's own. `rqvae_preset`: `sidforge` (Adam 1e-3, batch 1024) or `forge`
    (FORGE's trainer: AdamW 2e-3, weight decay 1e-4, batch 2048, warm-up then cosine).
    """

    embedding_model: str = "algr-item-emb"
    method: Method = "rq-kmeans"
    sizes: list[int] | None = None
    levels: int = 3
    backend: BackendName = "torch"
    device: str = "auto"
    seed: int = 0
    iters: int = 20
    train_sample: int = 2_000_000
    rqvae_epochs: int = 20
    rqvae_preset: Preset = "sidforge"
    mode: Mode = "auto"
    max_new_share: float = DriftBounds.max_new_share
    max_changed_share: float = DriftBounds.max_changed_share
    max_error_ratio: float = DriftBounds.max_error_ratio
    drift_sample: int = 100_000

    def bounds(self) -> DriftBounds:
        """The drift that `auto` accepts before it rebuilds."""
        return DriftBounds(self.max_new_share, self.max_changed_share, self.max_error_ratio)

    def build_config(self) -> BuildConfig:
        """The library's build settings (checked: an unknown choice or size is refused here)."""
        return BuildConfig(
            method=self.method,
            sizes=tuple(self.sizes) if self.sizes else None,
            levels=self.levels,
            backend=self.backend,
            device=self.device,
            seed=self.seed,
            iters=self.iters,
            train_sample=self.train_sample,
            rqvae_epochs=self.rqvae_epochs,
            rqvae_preset=self.rqvae_preset,
        )


class SidAssignConfig(Config):
    """Collision resolution, and `refresh` to add only new items to the latest build without moving any SID."""

    collision: Policy = "knn_capacity"
    capacity: int = 5
    candidates: int = 32
    refresh: bool = False
    batch_rows: int = 65_536


def embedding_source(model: str) -> str:
    """Which asset writes the rows of embedding model `model` into item_embeddings."""
    if model.endswith("+align"):
        return "aligned_embeddings"
    if model == "algr-item-emb":
        return "precomputed_embeddings"
    if model.count(":") == 2:
        return "item_embeddings"
    return "sidforge ingest (CLI)"


def build_summary(store: Lake, build_id: str) -> dict[str, object]:
    """A build's status, sizes and headline metrics (rounded) and its report, for the UI."""
    build = BuildRegistry(store).get(build_id)
    metrics = build.metrics
    return {
        "build_id": build_id,
        "build_status": str(build.status),
        "sizes": " × ".join(map(str, build.sizes)),
        **{k: rounded(metrics[k]) for k in SUMMARY_KEYS if k in metrics},
        **({"report": MetadataValue.path(metrics["report"])} if metrics.get("report") else {}),
    }


def _new_items(stream: Stream, known: pl.Series) -> Stream:
    """The stream less the items in `known`."""
    wanted = known.implode()

    def read() -> Iterator[pa.RecordBatch]:
        for batch in stream():
            yield from to_frame(batch).filter(~pl.col("item_id").is_in(wanted)).to_arrow().to_batches()

    return read


def _refresh_or_rebuild(
    store: Lake, stream: Embeddings, n_items: int, current: dict, config: SidBuildConfig
) -> tuple[SidBuild | None, Decision, Drift | None]:
    """The published build, the mode's decision (see SidBuildConfig) and the drift it was made on."""
    published = BuildRegistry(store).published()
    if config.mode == "rebuild" or published is None:
        return published, decide(config.mode, None, config.bounds(), False), None
    drift = measure(store, stream, n_items, published, config.drift_sample, config.seed)
    differ = (
        published.inputs.get("embedding_model") != current["embedding_model"]
        or published.inputs.get("config") != current["config"]
    )
    return published, decide(config.mode, drift, config.bounds(), differ), drift


@asset(deps=[precomputed_embeddings, item_embeddings, aligned_embeddings], group_name=GROUP, kinds={"pytorch", "delta"})
@cause_first
def sid_codebooks(context: AssetExecutionContext, config: SidBuildConfig, lake: LakeResource) -> MaterializeResult:
    """Train residual codebooks (RQ-KMeans or RQ-VAE) on a seeded sample of one embedding model: config
    `embedding_model` picks it (default `algr-item-emb`, written by `precomputed_embeddings`; OpenCLIP models by
    `item_embeddings`, `<model>+align` by `aligned_embeddings`); the metadata names the model and its asset."""
    store = lake.lake()
    registry = BuildRegistry(store)
    fed = {"embedding_model": config.embedding_model, "embedding_source": embedding_source(config.embedding_model)}
    run_id = context.run.run_id
    stream = embeddings(store, config.embedding_model)
    n_items = item_count(store, config.embedding_model)
    if not n_items:
        raise ValueError(f"no rows of model {config.embedding_model!r} in item_embeddings")
    build_cfg = config.build_config()
    current = {
        "embedding_model": config.embedding_model,
        "embeddings_fingerprint": str(fingerprint(stream)),
        "config": build_cfg.as_dict(),
    }
    latest = registry.latest(*KEPT)
    if latest is not None and same_inputs(latest.inputs, current):
        context.log.info(f"inputs unchanged since build {latest.build_id}: no new build")
        return MaterializeResult(
            metadata={**_codebook_metadata(store, latest.build_id), **fed, "result": "inputs unchanged, no new build"}
        )
    published, decision, drift = _refresh_or_rebuild(store, stream, n_items, current, config)
    if decision.refresh and published is not None and drift is not None:
        return MaterializeResult(
            metadata={
                **_codebook_metadata(store, published.build_id),
                **fed,
                "build_id": published.build_id,
                **asdict(drift),
                "result": f"{decision.reason} of {published.build_id}",
            }
        )
    context.log.info(f"training a new build: {decision.reason}")
    rows = sample_rows(n_items, config.train_sample, config.seed)
    sample = sample_of(stream, rows)
    started = dt.datetime.now(dt.UTC)
    model = train(vectors_of(sample.to_arrow()), build_cfg, n_items, progress=ProgressLines(context.log.info))
    train_s = (dt.datetime.now(dt.UTC) - started).total_seconds()
    new_id = build_id(config.method, started, run_id)
    artifact = save_model(store, new_id, model, {"build_id": new_id, "embedding_model": config.embedding_model})
    codebooks = pl.concat(
        [
            pl.DataFrame(
                {
                    "level": level + 1,
                    "code": np.arange(len(book), dtype=np.int32),
                    "centroid": pl.Series(book.tolist(), dtype=pl.List(pl.Float32)),
                    "build_id": new_id,
                }
            )
            for level, book in enumerate(model.codebooks)
        ]
    )
    store.replace_partitions("codebooks", codebooks.with_columns(pl.col("level").cast(pl.Int16)), run_id=run_id)
    inputs = {
        **current,
        "item_embeddings_version": store.version("item_embeddings"),
        "items": n_items,
        "data_through": data_through(store),
        "train_sample": len(rows),
        "artifact": artifact,
        "rebuild_reason": decision.reason,
    }
    registry.record(
        SidBuild(
            new_id,
            config.method,
            list(model.sizes),
            BuildStatus.TRAINED,
            started,
            run_id,
            inputs=inputs,
            metrics={"train_s": train_s, **getattr(model, "timings", {})},
            seed=config.seed,
        )
    )
    return MaterializeResult(
        metadata={
            **_codebook_metadata(store, new_id),
            **fed,
            "method": config.method,
            "items": n_items,
            "train_sample": len(rows),
            "train_seconds": round(train_s, 3),
            "artifact": MetadataValue.path(artifact),
            "backend": config.backend,
            "device": config.device,
            "result": f"rebuild: {decision.reason}",
        }
    )


def _codebook_metadata(store: Lake, build_id: str) -> dict[str, object]:
    return {**table_metadata(store, "codebooks", pl.col("build_id") == build_id), **build_summary(store, build_id)}


def _churn(store: Lake, previous: str, sids: pl.DataFrame) -> dict:
    """The churn of `sids` against the build `previous`'s item_sids rows."""
    before = store.scan("item_sids").filter(pl.col("build_id") == previous).select("item_id", "sid").collect()
    return churn(before, sids.select("item_id", "sid"))


def _write_sids(store: Lake, sids: pl.DataFrame, build_id: str, source: str, run_id: str, *, merge: bool) -> int:
    frame = sids.with_columns(source=pl.lit(source), run_id=pl.lit(run_id), build_id=pl.lit(build_id))
    if merge:
        return store.merge("item_sids", frame, run_id=run_id, sources=[source])
    return store.replace_partitions("item_sids", frame, run_id=run_id, sources=[source])


@asset(deps=[sid_codebooks], group_name=GROUP, kinds={"pytorch", "delta"})
@cause_first
def item_sids(
    context: AssetExecutionContext,
    config: SidAssignConfig,
    lake: LakeResource,
    engine: EngineResource,
    spark: SparkResource,
) -> MaterializeResult:
    """Every item's semantic ID in the latest trained build (or, with `refresh`, new items only). With the spark
    engine a full assignment runs on the cluster; a refresh (new items only) runs in process."""
    store = lake.lake()
    registry = BuildRegistry(store)
    run_id = context.run.run_id
    trained = None if config.refresh else registry.latest(BuildStatus.TRAINED, trained_here=True)
    build = trained or registry.latest(*ASSIGNED, trained_here=True)
    if build is None:
        wanted = "built or published" if config.refresh else "trained, built or published"
        raise ValueError(f"no {wanted} SID build; materialize sid_codebooks first")
    refresh = trained is None  # no new codebooks: assign new items to the latest build
    build_cfg = BuildConfig(
        **{
            **build.inputs["config"],
            "sizes": tuple(build.inputs["config"]["sizes"] or ()) or None,
            "collision": config.collision,
            "capacity": config.capacity,
            "candidates": config.candidates,
        }
    )
    model = load_model(store, build.inputs["artifact"], "cpu" if build_cfg.device == "auto" else build_cfg.device)
    stream = embeddings(store, build.inputs["embedding_model"], batch_rows=config.batch_rows)
    source = f"item_embeddings@v{store.version('item_embeddings')}:{build.inputs['embedding_model']}"
    existing = store.scan("item_sids").filter(pl.col("build_id") == build.build_id)
    fixed = None
    if refresh:
        current = existing.select("item_id", "codes").collect()
        fixed = np.asarray(current["codes"].to_list(), dtype=np.int32).reshape(len(current), -1)
        if not item_ids(stream, without=current["item_id"]).len():
            return MaterializeResult(
                metadata={
                    **table_metadata(store, "item_sids", pl.col("build_id") == build.build_id),
                    **build_summary(store, build.build_id),
                    "items_assigned": 0,
                    "result": "no new items",
                }
            )
    previous = [b for b in registry.all(ASSIGNED) if b.method != "imported" and b.build_id != build.build_id]
    if engine.name() == "spark" and fixed is None:
        from builds.spark_assign import SidsTarget, assign_with_spark, churn_with_spark
        from lake.spark import spark_session, table_files

        session = spark_session(spark.url())
        files = table_files(
            session,
            store,
            "item_embeddings",
            where={"model": build.inputs["embedding_model"]},
            columns=["item_id", "embedding"],
        )
        written = assign_with_spark(model, files, build_cfg, SidsTarget(store, build.build_id, source, run_id))
        version, sizes, figures = written.version, written.sizes, written.figures
        changed = churn_with_spark(session, store, previous[-1].build_id, build.build_id) if previous else {}
    else:
        batches = _new_items(stream, current["item_id"]) if refresh else stream
        assigned = assign(model, batches, build_cfg, fixed=fixed)
        sids = assigned.frame()
        version = _write_sids(store, sids, build.build_id, source, run_id, merge=refresh)
        sizes, figures = list(assigned.resolution.sizes), assigned.metrics()
        changed = _churn(store, previous[-1].build_id, sids) if previous and not refresh else {}
    # A refresh's figures cover the new items only: kept apart so that the build's own figures stay whole.
    metrics = {**build.metrics, "last_refresh": figures} if refresh else {**build.metrics, **figures}
    if changed:
        metrics |= {**changed, "churn_against": previous[-1].build_id}
    registry.mark(build, BuildStatus.BUILT, sizes=sizes, metrics=metrics, run_id=run_id)
    return MaterializeResult(
        metadata={
            **table_metadata(store, "item_sids", pl.col("build_id") == build.build_id),
            **build_summary(store, build.build_id),
            "items_assigned": figures["items"],
            "delta_version": version,
            "collision_rate_before": round(figures["collision_rate_before"], 6),
            "collision_rate_after": round(figures["collision_rate_after"], 6),
            "items_moved": figures["items_moved"],
            "largest_group_before": figures["largest_group_before"],
            "largest_group_after": figures["largest_group_after"],
            "unplaced": figures["unplaced"],
            "unplaced_reasons": MetadataValue.md(
                "\n".join(f"- {k}: {v:,}" for k, v in figures["unplaced_reasons"].items()) or "(none)"
            ),
            "per_level": per_level(
                {
                    "utilisation": figures["utilisation_per_level"],
                    "reconstruction_error": figures["reconstruction_error_per_level"],
                }
            ),
            "assign_seconds": round(figures["assign_s"], 3),
            "resolve_seconds": round(figures["resolve_s"], 3),
            **({"churn": round(metrics["churn"], 6)} if "churn" in metrics else {}),
        }
    )

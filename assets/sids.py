"""Semantic-ID assets: `sid_codebooks` trains a build, `item_sids` assigns every item and resolves collisions."""

import datetime as dt
import json
from collections.abc import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from assets.embeddings import aligned_embeddings, item_embeddings
from assets.errors import cause_first
from assets.ingest import precomputed_embeddings
from assets.metadata import per_level, rounded, table_metadata
from assets.resources import LakeResource
from lake import Lake
from quality.report import SUMMARY_KEYS
from sid_index.artifact import load_artifact, save_artifact
from sid_index.build import Assigned, BuildConfig, assign, churn, sample_rows, train
from sid_index.drift import error_ratio
from sid_index.rq import vectors_of

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
    method: str = "rq-kmeans"
    sizes: list[int] | None = None
    levels: int = 3
    backend: str = "torch"
    device: str = "auto"
    seed: int = 0
    iters: int = 20
    train_sample: int = 2_000_000
    rqvae_epochs: int = 20
    rqvae_preset: str = "sidforge"
    mode: str = "auto"
    max_new_share: float = 0.2
    max_changed_share: float = 0.05
    max_error_ratio: float = 1.5
    drift_sample: int = 100_000


class SidAssignConfig(Config):
    """Collision resolution, and `refresh` to add only new items to the latest build without moving any SID."""

    collision: str = "knn_capacity"
    capacity: int = 5
    candidates: int = 32
    refresh: bool = False
    batch_rows: int = 262_144


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
    row = store.scan("sid_builds").filter(pl.col("build_id") == build_id).collect().row(0, named=True)
    metrics = json.loads(row["metrics"] or "{}")
    return {"build_id": build_id, "build_status": row["status"], "sizes": " × ".join(map(str, row["sizes"])),
            **{k: rounded(metrics[k]) for k in SUMMARY_KEYS if k in metrics},
            **({"report": MetadataValue.path(metrics["report"])} if metrics.get("report") else {})}


def _embeddings(store: Lake, model: str) -> pl.LazyFrame:
    return (store.scan("item_embeddings").filter(pl.col("model") == model).select("item_id", "embedding")
            .sort("item_id"))


def _batches(frame: pl.LazyFrame, rows: int) -> Iterator[pa.RecordBatch]:
    for chunk in frame.collect_batches(chunk_size=rows):
        yield from chunk.to_arrow().to_batches()


def _builds(store: Lake) -> pl.DataFrame:
    return store.scan("sid_builds").sort("created_at").collect()


def _update_build(store: Lake, build: dict, run_id: str, **changes: object) -> None:
    store.merge("sid_builds", pl.DataFrame([{**build, **changes, "run_id": run_id}]), run_id=run_id)


def _changed_items(store: Lake, frame: pl.LazyFrame, model: str, version: int | None) -> int:
    """Items whose embedding differs from the one they had at Delta version `version` of item_embeddings."""
    if version is None:
        return 0
    digest = pl.col("embedding").hash(seed=1).alias("digest")
    then = store.scan("item_embeddings", version=version).filter(pl.col("model") == model).select("item_id", digest)
    return (frame.select("item_id", digest).join(then, on="item_id").filter(pl.col("digest") != pl.col("digest_right"))
            .select(pl.len()).collect().item())


def _drift(store: Lake, frame: pl.LazyFrame, n_items: int, build: dict, config: SidBuildConfig) -> dict:
    """New and changed shares since the published `build`, and how well its codebooks encode the new items."""
    inputs = json.loads(build["inputs"] or "{}")
    assigned = store.scan("item_sids").filter(pl.col("build_id") == build["build_id"]).select("item_id")
    new = frame.join(assigned, on="item_id", how="anti")
    n_new = new.select(pl.len()).collect().item()
    changed = _changed_items(store, frame, inputs.get("embedding_model", ""), inputs.get("item_embeddings_version"))
    errors = json.loads(build["metrics"] or "{}").get("reconstruction_error_per_level") or [0.0]
    ratio = 0.0
    if n_new and inputs.get("artifact"):
        picked = pl.Series(sample_rows(n_new, config.drift_sample, config.seed).astype(np.uint32)).implode()
        vectors = vectors_of(new.with_row_index("row").filter(pl.col("row").is_in(picked)).collect().to_arrow())
        ratio = error_ratio(load_artifact(inputs["artifact"]), vectors, float(errors[-1]))
    return {"new_items": n_new, "new_item_share": round(n_new / n_items, 6) if n_items else 0.0,
            "changed_items": changed, "changed_item_share": round(changed / n_items, 6) if n_items else 0.0,
            "new_item_error_ratio": round(ratio, 4)}


def _refresh_instead(store: Lake, frame: pl.LazyFrame, n_items: int, current: dict,
                     config: SidBuildConfig) -> tuple[dict | None, str]:
    """(metadata of a refresh, None to rebuild) as the mode decides (see SidBuildConfig), and why."""
    published = store.published_build()
    if config.mode == "rebuild" or published is None:
        return None, "mode rebuild" if config.mode == "rebuild" else "no published build"
    row = _builds(store).filter(pl.col("build_id") == published).row(0, named=True)
    inputs = json.loads(row["inputs"] or "{}")
    drift = _drift(store, frame, n_items, row, config)
    over = [f"{name} {drift[key]} > {bound}" for name, key, bound in (
        ("new items", "new_item_share", config.max_new_share),
        ("changed items", "changed_item_share", config.max_changed_share),
        ("new-item error ratio", "new_item_error_ratio", config.max_error_ratio)) if drift[key] > bound]
    if inputs.get("embedding_model") != current["embedding_model"] or inputs.get("config") != current["config"]:
        over.insert(0, "settings differ from the published build")
    if config.mode == "refresh" or not over:
        return {"build_id": published, **drift,
                "result": f"refresh: {drift['new_items']} new items go to the published codebooks of {published}"}, ""
    return None, "; ".join(over)


def _data_through(store: Lake) -> str | None:
    """The last day of interactions and sequences in the lake: the data a build made now covers."""
    days = [store.scan(name).select(pl.col("ds").max()).collect().item() for name in ("interactions", "user_sequences")]
    return max((d for d in days if d), default=None)


def _same_inputs(store: Lake, current: dict) -> str | None:
    """The latest kept build (trained, built or published) made from exactly these inputs, if any."""
    builds = _builds(store).filter(pl.col("status").is_in(["trained", "built", "published"]))
    if not builds.height:
        return None
    latest = builds.row(-1, named=True)
    inputs = json.loads(latest["inputs"] or "{}")
    return latest["build_id"] if all(inputs.get(k) == v for k, v in current.items()) else None


@asset(deps=[precomputed_embeddings, item_embeddings, aligned_embeddings], group_name=GROUP,
       kinds={"pytorch", "delta"})
@cause_first
def sid_codebooks(context: AssetExecutionContext, config: SidBuildConfig, lake: LakeResource) -> MaterializeResult:
    """Train residual codebooks (RQ-KMeans or RQ-VAE) on a seeded sample of one embedding model: config
    `embedding_model` picks it (default `algr-item-emb`, written by `precomputed_embeddings`; OpenCLIP models by
    `item_embeddings`, `<model>+align` by `aligned_embeddings`); the metadata names the model and its asset."""
    store = lake.lake()
    fed = {"embedding_model": config.embedding_model, "embedding_source": embedding_source(config.embedding_model)}
    run_id = context.run.run_id
    frame = _embeddings(store, config.embedding_model)
    n_items = frame.select(pl.len()).collect().item()
    if not n_items:
        raise ValueError(f"no rows of model {config.embedding_model!r} in item_embeddings")
    build_cfg = BuildConfig(method=config.method, sizes=tuple(config.sizes) if config.sizes else None,
                            levels=config.levels, backend=config.backend, device=config.device, seed=config.seed,
                            iters=config.iters, train_sample=config.train_sample, rqvae_epochs=config.rqvae_epochs,
                            rqvae_preset=config.rqvae_preset)
    fingerprint = frame.select(pl.struct("item_id", "embedding").hash(seed=1).sum()).collect().item()
    current = {"embedding_model": config.embedding_model, "embeddings_fingerprint": str(fingerprint),
               "config": build_cfg.as_dict()}
    unchanged = _same_inputs(store, current)
    if unchanged:
        context.log.info(f"inputs unchanged since build {unchanged}: no new build")
        return MaterializeResult(metadata={**_codebook_metadata(store, unchanged), **fed,
                                           "result": "inputs unchanged, no new build"})
    refresh, reason = _refresh_instead(store, frame, n_items, current, config)
    if refresh:
        return MaterializeResult(metadata={**_codebook_metadata(store, refresh["build_id"]), **fed, **refresh})
    context.log.info(f"training a new build: {reason}")
    rows = sample_rows(n_items, config.train_sample, config.seed)
    picked = pl.Series(rows.astype(np.uint32)).implode()
    sample = frame.with_row_index("row").filter(pl.col("row").is_in(picked)).collect()
    started = dt.datetime.now(dt.UTC)
    model = train(vectors_of(sample.to_arrow()), build_cfg, n_items)
    train_s = (dt.datetime.now(dt.UTC) - started).total_seconds()
    build_id = f"{config.method}-{started:%Y%m%dT%H%M%S}-{run_id[:8]}"
    artifact = save_artifact(model, store.path("_artifacts", "sid", build_id, "model.safetensors"),
                             {"build_id": build_id, "embedding_model": config.embedding_model})
    codebooks = pl.concat([pl.DataFrame({"level": level + 1, "code": np.arange(len(book), dtype=np.int32),
                                         "centroid": pl.Series(book.tolist(), dtype=pl.List(pl.Float32)),
                                         "build_id": build_id}) for level, book in enumerate(model.codebooks)])
    store.replace_partitions("codebooks", codebooks.with_columns(pl.col("level").cast(pl.Int16)), run_id=run_id)
    inputs = {**current, "item_embeddings_version": store.version("item_embeddings"), "items": n_items,
              "data_through": _data_through(store),
              "train_sample": len(rows), "artifact": str(artifact), "rebuild_reason": reason}
    record = {"build_id": build_id, "method": config.method, "levels": len(model.sizes), "sizes": model.sizes,
              "inputs": json.dumps(inputs), "seed": config.seed, "status": "trained",
              "metrics": json.dumps({"train_s": train_s, **getattr(model, "timings", {})}),
              "created_at": started, "run_id": run_id}
    _update_build(store, record, run_id)
    return MaterializeResult(metadata={
        **_codebook_metadata(store, build_id), **fed, "method": config.method, "items": n_items,
        "train_sample": len(rows), "train_seconds": round(train_s, 3), "artifact": MetadataValue.path(str(artifact)),
        "backend": config.backend, "device": config.device, "result": f"rebuild: {reason}"})


def _codebook_metadata(store: Lake, build_id: str) -> dict[str, object]:
    return {**table_metadata(store, "codebooks", pl.col("build_id") == build_id), **build_summary(store, build_id)}


def _write_sids(store: Lake, assigned: Assigned, build_id: str, source: str, run_id: str, *, merge: bool) -> int:
    frame = pl.DataFrame({
        "item_id": assigned.item_ids,
        "codes_raw": pl.Series(assigned.raw.codes.tolist(), dtype=pl.List(pl.Int32)),
        "codes": pl.Series(assigned.resolution.codes.tolist(), dtype=pl.List(pl.Int32)),
        "sid": assigned.sids,
    }).with_columns(source=pl.lit(source), run_id=pl.lit(run_id), build_id=pl.lit(build_id))
    if merge:
        return store.merge("item_sids", frame, run_id=run_id, sources=[source])
    return store.replace_partitions("item_sids", frame, run_id=run_id, sources=[source])


@asset(deps=[sid_codebooks], group_name=GROUP, kinds={"pytorch", "delta"})
@cause_first
def item_sids(context: AssetExecutionContext, config: SidAssignConfig, lake: LakeResource) -> MaterializeResult:
    """Every item's semantic ID in the latest trained build (or, with `refresh`, new items only)."""
    store = lake.lake()
    run_id = context.run.run_id
    builds = _builds(store).filter(pl.col("method") != "imported")
    wanted = ["built", "published"] if config.refresh else ["trained"]
    candidates = builds.filter(pl.col("status").is_in(wanted))
    if not candidates.height and builds.filter(pl.col("status").is_in(["built", "published"])).height:
        wanted = ["built", "published"]  # no new codebooks: assign new items to the latest build (a refresh)
        candidates = builds.filter(pl.col("status").is_in(wanted))
        config = SidAssignConfig(**{**config.model_dump(), "refresh": True})
    if not candidates.height:
        raise ValueError(f"no SID build with status {wanted}; materialize sid_codebooks first")
    build = candidates.row(-1, named=True)
    inputs = json.loads(build["inputs"])
    build_cfg = BuildConfig(**{**inputs["config"], "sizes": tuple(inputs["config"]["sizes"] or ()) or None,
                               "collision": config.collision, "capacity": config.capacity,
                               "candidates": config.candidates})
    model = load_artifact(inputs["artifact"], device="cpu" if build_cfg.device == "auto" else build_cfg.device)
    frame = _embeddings(store, inputs["embedding_model"])
    source = f"item_embeddings@v{store.version('item_embeddings')}:{inputs['embedding_model']}"
    existing = store.scan("item_sids").filter(pl.col("build_id") == build["build_id"])
    fixed = None
    if config.refresh:
        current = existing.select("item_id", "codes").collect()
        frame = frame.join(current.lazy().select("item_id"), on="item_id", how="anti")
        fixed = np.asarray(current["codes"].to_list(), dtype=np.int32).reshape(len(current), -1)
        if not frame.select(pl.len()).collect().item():
            return MaterializeResult(metadata={
                **table_metadata(store, "item_sids", pl.col("build_id") == build["build_id"]),
                **build_summary(store, build["build_id"]), "items_assigned": 0, "result": "no new items"})
    assigned = assign(model, _batches(frame, config.batch_rows), build_cfg, fixed=fixed)
    version = _write_sids(store, assigned, build["build_id"], source, run_id, merge=config.refresh)
    figures = assigned.metrics()
    recorded = json.loads(build["metrics"] or "{}")
    # A refresh's figures cover the new items only: kept apart so that the build's own figures stay whole.
    metrics = {**recorded, "last_refresh": figures} if config.refresh else {**recorded, **figures}
    if not config.refresh:
        previous = builds.filter(pl.col("status").is_in(["built", "published"]) &
                                 (pl.col("build_id") != build["build_id"]))
        if previous.height:
            before = store.scan("item_sids").filter(pl.col("build_id") == previous["build_id"][-1]).select(
                "item_id", "sid").collect()
            metrics |= {**churn(before, pl.DataFrame({"item_id": assigned.item_ids, "sid": assigned.sids})),
                        "churn_against": previous["build_id"][-1]}
    _update_build(store, build, run_id, status="built", sizes=assigned.resolution.sizes,
                  levels=len(assigned.resolution.sizes), metrics=json.dumps(metrics))
    report = assigned.resolution.report
    return MaterializeResult(metadata={
        **table_metadata(store, "item_sids", pl.col("build_id") == build["build_id"]),
        **build_summary(store, build["build_id"]), "items_assigned": len(assigned.item_ids), "delta_version": version,
        "collision_rate_before": round(report["collision_rate_before"], 6),
        "collision_rate_after": round(report["collision_rate_after"], 6),
        "items_moved": report["items_moved"], "largest_group_before": report["largest_group_before"],
        "largest_group_after": report["largest_group_after"], "unplaced": report["unplaced"],
        "unplaced_reasons": MetadataValue.md("\n".join(f"- {k}: {v:,}" for k, v in report["unplaced_reasons"].items())
                                             or "(none)"),
        "per_level": per_level({"utilisation": assigned.utilisation(),
                                "reconstruction_error": figures["reconstruction_error_per_level"]}),
        "assign_seconds": round(assigned.timings["assign_s"], 3),
        "resolve_seconds": round(assigned.timings["resolve_s"], 3),
        **({"churn": round(metrics["churn"], 6)} if "churn" in metrics else {}),
    })

"""Drift since a published build, measured on the lake: items new to it, items whose embedding changed since
it was built, and how well its codebooks encode the new items."""

from __future__ import annotations

import numpy as np
import polars as pl

from builds.artifacts import load_model
from builds.lifecycle import Drift
from builds.registry import SidBuild
from lake.lake import Lake
from sid_index.build import sample_rows
from sid_index.drift import error_ratio
from sid_index.rq import vectors_of


def embeddings(lake: Lake, model: str) -> pl.LazyFrame:
    """item_id and embedding of every item of embedding model `model`, by item id."""
    return lake.scan("item_embeddings").filter(pl.col("model") == model).select("item_id", "embedding").sort("item_id")


def changed_items(lake: Lake, frame: pl.LazyFrame, model: str, version: int | None) -> int:
    """Items of `frame` whose embedding differs from the one they had at Delta version `version`."""
    if version is None:
        return 0
    digest = pl.col("embedding").hash(seed=1).alias("digest")
    then = lake.scan("item_embeddings", version=version).filter(pl.col("model") == model).select("item_id", digest)
    return (
        frame.select("item_id", digest)
        .join(then, on="item_id")
        .filter(pl.col("digest") != pl.col("digest_right"))
        .select(pl.len())
        .collect()
        .item()
    )


def measure(lake: Lake, frame: pl.LazyFrame, n_items: int, build: SidBuild, sample: int, seed: int) -> Drift:
    """Drift of the catalogue `frame` (item_id, embedding; `n_items` rows) since `build`; the error ratio is
    measured on a seeded sample of at most `sample` new items."""
    inputs = build.inputs
    assigned = lake.scan("item_sids").filter(pl.col("build_id") == build.build_id).select("item_id")
    new = frame.join(assigned, on="item_id", how="anti")
    n_new = new.select(pl.len()).collect().item()
    changed = changed_items(lake, frame, inputs.get("embedding_model", ""), inputs.get("item_embeddings_version"))
    errors = build.metrics.get("reconstruction_error_per_level") or [0.0]
    ratio = 0.0
    if n_new and inputs.get("artifact"):
        picked = pl.Series(sample_rows(n_new, sample, seed).astype(np.uint32)).implode()
        vectors = vectors_of(new.with_row_index("row").filter(pl.col("row").is_in(picked)).collect().to_arrow())
        ratio = error_ratio(load_model(lake, inputs["artifact"]), vectors, float(errors[-1]))
    return Drift(n_new, _share(n_new, n_items), changed, _share(changed, n_items), round(ratio, 4))


def _share(count: int, total: int) -> float:
    return round(count / total, 6) if total else 0.0


def data_through(lake: Lake) -> str | None:
    """The last day of interactions and sequences in the lake: the data a build made now covers."""
    days = [lake.scan(name).select(pl.col("ds").max()).collect().item() for name in ("interactions", "user_sequences")]
    return max((d for d in days if d), default=None)

"""Helpers shared by the tests: literal fixture files, planted-cluster embeddings, the pipeline's definitions over
a temporary lake, and the published build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dagster import Definitions, load_assets_from_modules

from assets.quality import TABLE_CHECKS, sid_build_quality
from assets.resources import (
    EncoderResource,
    EngineResource,
    LakeResource,
    LandingResource,
    QualityResource,
    SparkResource,
)
from builds.registry import BuildRegistry
from embeddings.model import TINY_CONFIG
from lake import Lake
from pipelines.definitions import ASSET_MODULES
from pipelines.jobs import nightly_sid_rebuild

__all__ = ["TINY_CONFIG", "pipeline_defs", "planted", "published_build", "purity", "write"]


def write(path: Path, text: str | bytes) -> Path:
    """Write a small literal fixture file and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def planted(n_clusters: int = 8, per_cluster: int = 100, dim: int = 32, noise: float = 0.05, seed: int = 0):
    """Unit vectors around `n_clusters` well separated centres, and each row's true cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    x = centres[labels] + noise * rng.normal(size=(len(labels), dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    order = rng.permutation(len(labels))
    return x[order].astype(np.float32), labels[order]


def purity(codes: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose code's majority label is their own label."""
    hits = 0
    for code in np.unique(codes):
        hits += np.bincount(labels[codes == code]).max()
    return hits / len(codes)


def pipeline_defs(tmp_path: Path, raw: str | Path, checkpoint: Path, lake_root: str | None = None) -> Definitions:
    """The pipeline's assets, checks and nightly job over a lake in `tmp_path` (or at `lake_root`), landing `raw`
    (a folder or an object-store prefix) and the tiny encoder."""
    resources = {
        "lake": LakeResource(root=lake_root or str(tmp_path / "lake")),
        "landing": LandingResource(root=str(raw)),
        "engine": EngineResource(),
        "spark": SparkResource(),
        "quality": QualityResource(device="cpu"),
        "encoder": EncoderResource(
            model_name="sidforge-tiny",
            weights=str(checkpoint),
            config_file=str(TINY_CONFIG),
            device="cpu",
            num_workers=0,
        ),
    }
    return Definitions(
        assets=load_assets_from_modules(ASSET_MODULES),
        asset_checks=[*TABLE_CHECKS, sid_build_quality],
        jobs=[nightly_sid_rebuild],
        resources=resources,
    )


def published_build(lake: Lake) -> str | None:
    """The id of the build readers get by default, None before the first publication."""
    build = BuildRegistry(lake).published()
    return build.build_id if build else None

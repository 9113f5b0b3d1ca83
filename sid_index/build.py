"""A semantic-ID build: train on a sample, assign every item from a stream, resolve collisions, measure.

Also: assigning new items to published codebooks without moving published SIDs, and churn between builds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import numpy as np
import polars as pl
import pyarrow as pa

from sid_index.codec import auto_sizes, render
from sid_index.collisions import METHODS as POLICIES
from sid_index.collisions import Policy, Resolution, resolve, resolve_by_prefix
from sid_index.kmeans import BACKENDS, PRECISIONS, BackendName, Init, KMeansParams, Precision, make_backend
from sid_index.rq import Encoded, SidModel, encode_batches, train_rq_kmeans
from sid_index.rqvae import PRESETS, Preset, preset, train_rqvae

Method = Literal["rq-kmeans", "rq-vae"]
METHODS: tuple[str, ...] = get_args(Method)


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides a build's codes (same config, data and device type → same codes)."""

    method: Method = "rq-kmeans"
    sizes: tuple[int, ...] | None = None
    levels: int = 3
    backend: BackendName = "torch"
    device: str = "auto"
    precision: Precision = "fp32"
    seed: int = 0
    iters: int = 20
    init: Init = "random"
    max_points_per_centroid: int = 256
    train_sample: int = 2_000_000
    collision: Policy = "knn_capacity"
    capacity: int = 5
    candidates: int = 32
    resolve_chunk_items: int = 20_000_000
    rqvae_epochs: int = 20
    rqvae_pair_weight: float = 0.0
    rqvae_preset: Preset = "sidforge"

    def __post_init__(self) -> None:
        for kind, value, choices in (
            ("method", self.method, METHODS),
            ("backend", self.backend, BACKENDS),
            ("precision", self.precision, PRECISIONS),
            ("collision policy", self.collision, POLICIES),
            ("RQ-VAE preset", self.rqvae_preset, tuple(PRESETS)),
        ):
            if value not in choices:
                raise ValueError(f"unknown {kind} {value!r}; choose one of {', '.join(choices)}")
        if self.sizes is not None and (not self.sizes or min(self.sizes) < 1):
            raise ValueError(f"codebook sizes {list(self.sizes)} must each be at least 1")
        if self.capacity < 1 or self.candidates < 1 or self.levels < 1:
            raise ValueError("capacity, candidates and levels must be at least 1")

    def resolved_sizes(self, n_items: int) -> list[int]:
        """Configured sizes, or sizes fitted to the catalogue."""
        return list(self.sizes) if self.sizes else auto_sizes(n_items, self.levels)

    def as_dict(self) -> dict:
        """Plain dict for the build record."""
        return asdict(self)


@dataclass
class Assigned:
    """Every item's codes before and after collision resolution, and the build's figures."""

    item_ids: list[str]
    raw: Encoded
    resolution: Resolution
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def sids(self) -> list[str]:
        """AL-GR token strings of the resolved codes."""
        return render(self.resolution.codes, self.resolution.sizes)

    def utilisation(self, raw: bool = False) -> list[float]:
        """Share of each level's codes used by at least one item (resolved codes, or raw ones)."""
        codes = self.raw.codes if raw else self.resolution.codes
        return [
            float(len(np.unique(codes[:, level])) / size)
            for level, size in enumerate(self.resolution.sizes[: codes.shape[1]])
        ]

    def metrics(self) -> dict:
        """Collision, utilisation and reconstruction figures for the build record and asset metadata."""
        errors = self.raw.errors.mean(0).tolist() if len(self.raw.errors) else []
        return {
            **self.resolution.report,
            "utilisation_per_level": self.utilisation(),
            "utilisation_per_level_raw": self.utilisation(raw=True),
            "reconstruction_error_per_level": errors,
            **self.timings,
        }


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted, seeded sample of row positions (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def train(sample: np.ndarray, config: BuildConfig, n_items: int, pairs: np.ndarray | None = None) -> SidModel:
    """Train codebooks of `config.method` on `sample` (rows of the catalogue's embeddings)."""
    sizes = config.resolved_sizes(n_items)
    if config.method == "rq-kmeans":
        backend = make_backend(config.backend, config.device, config.precision)
        params = KMeansParams(config.iters, config.seed, config.init, config.max_points_per_centroid)
        return train_rq_kmeans(sample, sizes, backend, params)
    vae = preset(
        config.rqvae_preset, epochs=config.rqvae_epochs, seed=config.seed, pair_weight=config.rqvae_pair_weight
    )
    return train_rqvae(sample, sizes, vae, config.device, pairs)


def assign(
    model: SidModel, batches: Iterable[pa.RecordBatch], config: BuildConfig, fixed: np.ndarray | None = None
) -> Assigned:
    """Encode every item of the stream, then resolve collisions (published `fixed` codes never move)."""
    started = time.perf_counter()
    ids: list[str] = []
    parts: list[Encoded] = []
    for batch_ids, encoded in encode_batches(model, batches, top=config.candidates):
        ids += batch_ids
        parts.append(encoded)
    if not parts:
        raise ValueError("no items to assign: the embedding stream was empty")
    raw = Encoded.concat(parts)
    assigned_s = time.perf_counter() - started
    started = time.perf_counter()
    if fixed is None and len(ids) > config.resolve_chunk_items:
        chunks = -(-len(ids) // config.resolve_chunk_items)
        resolution = resolve_by_prefix(
            raw.codes,
            raw.candidates,
            raw.candidate_distances,
            model.sizes,
            config.collision,
            config.capacity,
            config.seed,
            chunks,
        )
    else:
        resolution = resolve(
            raw.codes,
            raw.candidates,
            raw.candidate_distances,
            model.sizes,
            config.collision,
            config.capacity,
            config.seed,
            fixed,
        )
    return Assigned(
        ids,
        raw,
        resolution,
        {
            "assign_s": assigned_s,
            "resolve_s": time.perf_counter() - started,
            "items_per_second_assign": len(ids) / max(assigned_s, 1e-9),
        },
    )


def churn(previous: pl.DataFrame, current: pl.DataFrame) -> dict:
    """Share of items present in both builds (frames of item_id, sid) whose SID changed."""
    both = previous.select("item_id", old="sid").join(current.select("item_id", "sid"), on="item_id")
    changed = int((both["old"] != both["sid"]).sum())
    return {
        "churn": changed / both.height if both.height else 0.0,
        "churn_items_compared": both.height,
        "churn_items_changed": changed,
    }

"""A semantic-ID build: train on a sample, assign every item from a stream, resolve collisions, measure.

Also: assigning new items to published codebooks without moving published SIDs, and churn between builds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import numpy as np
import polars as pl
import pyarrow as pa

from sid_index.codec import auto_sizes, code_lists, keys, render_expr
from sid_index.collisions import METHODS as POLICIES
from sid_index.collisions import (
    Occupancy,
    Policy,
    Resolution,
    Tiebreak,
    keeps_sid,
    prefix_parts,
    resolve_by_prefix,
    resolve_on_demand,
    tiebreaks_of,
)
from sid_index.heap import release_free_memory
from sid_index.kmeans import BACKENDS, PRECISIONS, BackendName, Init, KMeansParams, Precision, make_backend
from sid_index.rq import SidModel, train_rq_kmeans, vectors_of
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
    resolve_chunk_items: int = 250_000
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


Stream = Callable[[], Iterable[pa.RecordBatch]]
"""A function returning the (item_id, embedding) record batches anew on each call: assignment reads twice."""
TIEBREAK_SEED = 0x51D


@dataclass
class Assigned:
    """Every item's codes before and after collision resolution, and the build's figures."""

    item_ids: pl.Series
    raw_codes: np.ndarray
    resolution: Resolution
    errors: list[float]
    timings: dict[str, float] = field(default_factory=dict)

    def frame(self) -> pl.DataFrame:
        """item_id, codes_raw, codes (Int32 lists) and sid (the resolved codes' AL-GR token string), built
        in Polars without a Python object per item."""
        return pl.DataFrame(
            {
                "item_id": self.item_ids,
                "codes_raw": code_lists(self.raw_codes),
                "codes": code_lists(self.resolution.codes),
            }
        ).with_columns(sid=render_expr(pl.col("codes"), self.resolution.sizes))

    def utilisation(self, raw: bool = False) -> list[float]:
        """Share of each level's codes used by at least one item (resolved codes, or raw ones)."""
        codes = self.raw_codes if raw else self.resolution.codes
        return [
            float(len(np.unique(codes[:, level])) / size)
            for level, size in enumerate(self.resolution.sizes[: codes.shape[1]])
        ]

    def metrics(self) -> dict:
        """Collision, utilisation and reconstruction figures for the build record and asset metadata."""
        return {
            **self.resolution.report,
            "utilisation_per_level": self.utilisation(),
            "utilisation_per_level_raw": self.utilisation(raw=True),
            "reconstruction_error_per_level": self.errors,
            **self.timings,
        }


def tiebreaks(item_ids: pl.Series) -> np.ndarray:
    """A 32-bit hash of each item id: how ties between equally near items break, whatever their order."""
    return (item_ids.cast(pl.String).hash(seed=TIEBREAK_SEED) & 0xFFFFFFFF).cast(pl.UInt32).to_numpy()


@dataclass
class Codes:
    """The first pass over a stream: ids, codes, each item's distance to its own code, error sums per level; tie-break
    hashes are computed from the ids when asked for."""

    item_ids: pl.Series
    codes: np.ndarray
    priority: np.ndarray
    error_sums: np.ndarray

    def tiebreaks(self, rows: np.ndarray) -> np.ndarray:
        """The tie-break hashes of the items at `rows`, computed from their ids (4 bytes per item not held)."""
        return tiebreaks(self.item_ids.gather(rows))


ENCODE_BLOCK_BYTES = 16 << 20
"""Embedding bytes a model on the CPU encodes at once: larger batches are encoded in slices, so that the working
copies of the rows (and the memory the allocator keeps after them) stay small whatever the stream's batch size.
On a GPU the working copy lives on the device and batches go whole: 16 MB slices of 512-d vectors ran at 0.44
times the speed of 65 536-row batches on an H100 (benchmarks/results/sid_assign_encode-cuda.json)."""


def _blocks(model: SidModel, batches: Iterable[pa.RecordBatch], column: str = "embedding") -> Iterator[pa.RecordBatch]:
    """The stream's non-empty batches, sliced (zero-copy) to at most ENCODE_BLOCK_BYTES of embeddings each
    when `model` encodes on the CPU."""
    for batch in batches:
        if not batch.num_rows:
            continue
        rows = batch.num_rows
        if model.device.type == "cpu":
            width = max(1, len(batch.column(column).flatten()) // batch.num_rows)
            rows = max(1024, ENCODE_BLOCK_BYTES // (4 * width))
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def encode_stream(model: SidModel, batches: Iterable[pa.RecordBatch], id_column: str = "item_id") -> Codes:
    """Codes of every item of the stream, keeping 10 bytes per item besides the ids (16-bit codes where the
    codebooks allow, no candidates, no tie-break hashes)."""
    ids: list[pl.Series] = []
    codes: list[np.ndarray] = []
    priority: list[np.ndarray] = []
    sums = np.zeros(len(model.sizes), dtype=np.float64)
    code_type = _code_type(model.sizes)
    for batch in _blocks(model, batches):
        encoded = model.encode(vectors_of(batch), top=1)
        ids.append(pl.Series(id_column, batch.column(id_column)))
        codes.append(encoded.codes.astype(code_type, copy=False))
        priority.append(encoded.candidate_distances[:, 0].astype(np.float32))
        sums += encoded.errors.sum(0, dtype=np.float64)
        del encoded
        release_free_memory()
    if not codes:
        raise ValueError("no items to assign: the embedding stream was empty")
    first = Codes(pl.concat(ids, rechunk=False), _joined(codes), _joined(priority), sums)
    release_free_memory()
    return first


def _code_type(sizes: list[int]) -> type:
    """The narrowest integer type that holds every code (int16 up to 32,768 codes per level)."""
    return np.int16 if max(sizes) <= np.iinfo(np.int16).max + 1 else np.int32


def _joined(chunks: list[np.ndarray]) -> np.ndarray:
    """The chunks as one array, each chunk released once copied: the peak is one array's size above the
    chunks, not a second copy of every array at once."""
    out = np.empty((sum(len(c) for c in chunks), *chunks[0].shape[1:]), dtype=chunks[0].dtype)
    start = 0
    chunks.reverse()
    while chunks:
        chunk = chunks.pop()
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    return out


def must_move(
    codes: np.ndarray,
    priority: np.ndarray,
    tiebreak: Tiebreak,
    sizes: list[int],
    capacity: int,
    fixed: np.ndarray | None = None,
    parts: int = 1,
) -> np.ndarray:
    """Sorted rows that do not keep their SID under `capacity` (the nearer items of a SID keep it, published
    `fixed` items count first): the only items whose candidates are needed. Ranked prefix part by part."""
    held = Occupancy(np.zeros(0, dtype=np.int64) if fixed is None or not len(fixed) else keys(fixed, sizes))
    part_of = prefix_parts(codes, sizes, parts) if parts > 1 else np.zeros(len(codes), dtype=np.int16)
    tiebreak_of = tiebreaks_of(tiebreak)
    found = []
    for part in range(parts):
        rows = np.flatnonzero(part_of == part)
        found.append(rows[~keeps_sid(keys(codes[rows], sizes), priority[rows], tiebreak_of(rows), held, capacity)])
    return np.sort(np.concatenate(found))


def candidates(
    model: SidModel, batches: Iterable[pa.RecordBatch], rows: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `width` nearest last-level codes (and squared distances) of the items at sorted positions `rows`,
    read in one more pass over the stream."""
    code_type = _code_type(model.sizes[-1:])
    found_codes: list[np.ndarray] = []
    found_distances: list[np.ndarray] = []
    offset = 0
    for batch in _blocks(model, batches):
        mine = rows[np.searchsorted(rows, offset) : np.searchsorted(rows, offset + batch.num_rows)] - offset
        if len(mine):
            encoded = model.encode(vectors_of(batch.take(pa.array(mine))), top=width)
            found_codes.append(encoded.candidates.astype(code_type))
            found_distances.append(encoded.candidate_distances.astype(np.float32))
        offset += batch.num_rows
    if not found_codes:
        return np.zeros((0, width), dtype=code_type), np.zeros((0, width), dtype=np.float32)
    return _joined(found_codes), _joined(found_distances)


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted, seeded sample of row positions (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def train(
    sample: np.ndarray,
    config: BuildConfig,
    n_items: int,
    pairs: np.ndarray | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SidModel:
    """Train codebooks of `config.method` on `sample` (rows of the catalogue's embeddings); `progress(step, done,
    total)` per RQ-VAE epoch or RQ-KMeans level."""
    sizes = config.resolved_sizes(n_items)
    if config.method == "rq-kmeans":
        backend = make_backend(config.backend, config.device, config.precision)
        params = KMeansParams(config.iters, config.seed, config.init, config.max_points_per_centroid)
        return train_rq_kmeans(sample, sizes, backend, params, progress)
    vae = preset(
        config.rqvae_preset, epochs=config.rqvae_epochs, seed=config.seed, pair_weight=config.rqvae_pair_weight
    )
    return train_rqvae(sample, sizes, vae, config.device, pairs, progress)


def assign(model: SidModel, batches: Stream, config: BuildConfig, fixed: np.ndarray | None = None) -> Assigned:
    """Encode every item of the stream, then resolve collisions (published `fixed` codes never move).

    Memory per item: the id, its codes and its distance (about 27 bytes for short ids); candidates
    are computed in a second pass over the stream, only for the items that cannot keep their SID; the resolution
    runs prefix part by part (`resolve_chunk_items` items each) with the same result as in one piece."""
    started = time.perf_counter()
    first = encode_stream(model, batches())
    n, sizes = len(first.codes), model.sizes
    assigned_s = time.perf_counter() - started
    started = time.perf_counter()
    parts = 1 if fixed is not None else max(1, -(-n // config.resolve_chunk_items))
    rows = np.zeros(0, dtype=np.int64)
    if config.collision == "knn_capacity":
        rows = must_move(first.codes, first.priority, first.tiebreaks, sizes, config.capacity, fixed, parts)
    found = candidates(model, batches(), rows, config.candidates) if len(rows) else None
    release_free_memory()
    candidates_s = time.perf_counter() - started

    def candidates_of(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(wanted):
            return np.zeros((0, config.candidates), np.int32), np.zeros((0, config.candidates), np.float32)
        if found is None:
            raise RuntimeError("candidates were asked for items whose SID is within capacity")
        at = np.searchsorted(rows, wanted)
        return found[0][at].astype(np.int32), found[1][at]

    started = time.perf_counter()
    args = (config.collision, config.capacity, config.seed)
    if fixed is None:
        resolution = resolve_by_prefix(
            first.codes, first.priority, candidates_of, sizes, *args, parts, first.tiebreaks, config.candidates
        )
    else:
        resolution = resolve_on_demand(
            first.codes,
            first.priority,
            candidates_of,
            sizes,
            *args,
            fixed,
            first.tiebreaks(np.arange(n)),
            config.candidates,
        )
    return Assigned(
        first.item_ids,
        first.codes,
        resolution,
        (first.error_sums / max(n, 1)).tolist(),
        {
            "assign_s": assigned_s,
            "candidates_s": candidates_s,
            "resolve_s": time.perf_counter() - started,
            "items_per_second_assign": n / max(assigned_s, 1e-9),
            "items_with_candidates": len(rows),
        },
    )


def churn(previous: pl.DataFrame, current: pl.DataFrame) -> dict:
    """Share of items present in both builds (frames of item_id, sid) whose SID changed."""
    both = previous.select("item_id", old="sid").join(current.select("item_id", "sid"), on="item_id")
    return churn_figures(both.height, int((both["old"] != both["sid"]).sum()))


def churn_figures(compared: int, changed: int) -> dict:
    """The churn record of `changed` SIDs among `compared` items present in both builds."""
    return {
        "churn": changed / compared if compared else 0.0,
        "churn_items_compared": compared,
        "churn_items_changed": changed,
    }

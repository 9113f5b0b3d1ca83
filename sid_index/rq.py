"""RQ-KMeans: L levels of k-means codebooks over residuals, trained on a sample, applied in a stream."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import pyarrow as pa
import torch

from sid_index.kmeans import Backend, KMeansParams, Residuals, Rows
from sid_index.levels import level_metrics

CANDIDATES = 8


@dataclass
class Encoded:
    """Codes of a batch of items, with what collision resolution and quality metrics need.

    `codes` (n, L) int32; `candidates`/`candidate_distances` (n, T): the T nearest last-level codes of each
    item's last residual and their squared distances; `errors` (n, L): squared reconstruction error after
    each level.
    """

    codes: np.ndarray
    candidates: np.ndarray
    candidate_distances: np.ndarray
    errors: np.ndarray

    @staticmethod
    def concat(parts: Sequence[Encoded]) -> Encoded:
        """One Encoded from several batches, in order."""
        return Encoded(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("codes", "candidates", "candidate_distances", "errors")
            )
        )


class SidModel(Protocol):
    """A trained semantic-ID model: codebooks per level, encode and decode."""

    method: str

    @property
    def codebooks(self) -> list[np.ndarray]: ...

    @property
    def sizes(self) -> list[int]: ...

    @property
    def device(self) -> torch.device:
        """Where it encodes."""
        ...

    def encode(self, x: np.ndarray, top: int = CANDIDATES) -> Encoded: ...

    def decode(self, codes: np.ndarray) -> np.ndarray: ...


@dataclass
class RQKMeans:
    """Residual k-means codebooks; `backend` does the nearest-centroid searches."""

    codebooks: list[np.ndarray]
    backend: Backend
    method: str = "rq-kmeans"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        """Codebook size of each level."""
        return [len(c) for c in self.codebooks]

    @property
    def device(self) -> torch.device:
        """Where its backend searches the codebooks."""
        return self.backend.device

    def encode(self, x: np.ndarray, top: int = CANDIDATES) -> Encoded:
        """Codes of every row of `x`, level by level on the residual."""
        residual = Residuals(x, self.backend.device)
        levels = len(self.codebooks)
        codes = np.empty((len(x), levels), dtype=np.int32)
        errors = np.empty((len(x), levels), dtype=np.float32)
        cands = cand_d = None
        for level, book in enumerate(self.codebooks):
            last = level == levels - 1
            a = self.backend.assign(residual.rows, book, top=top if last else 1)
            codes[:, level] = a.codes
            if last:
                cands, cand_d = a.candidates, a.candidate_distances
            residual.subtract(book, a.codes)
            errors[:, level] = residual.squared_norms()
        if cands is None or cand_d is None:
            cands, cand_d = codes[:, -1:].copy(), errors[:, -1:].copy()
        return Encoded(codes, cands, cand_d, errors)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstructed embeddings: the sum of each level's codeword."""
        out = np.zeros((len(codes), self.codebooks[0].shape[1]), dtype=np.float32)
        for level, book in enumerate(self.codebooks):
            out += book[codes[:, level]]
        return out


def collapsed(codes: np.ndarray, size: int) -> bool:
    """Whether a level's codes collapsed: perplexity below a tenth of its size (at least 2 from 4 codes up).

    k-means with random seeds (faiss's as much as this project's) sometimes leaves one near-zero codeword
    holding most items of a residual level: one seed shorter than the others is closer to almost every
    nearly orthogonal residual.
    """
    return level_metrics(codes.astype(np.int64), size)["perplexity"] < max(min(2.0, size / 2), 0.1 * size)


def _train_level(
    backend: Backend, residual: Rows, size: int, params: KMeansParams, level: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Centroids of one level and the codes of `residual`; a collapsed level is retrained with other seeds
    (at most `collapse_retries` times; the first that does not collapse, else the last). Also the retries used."""
    for attempt in range(params.collapse_retries + 1):
        centroids = backend.train(residual, size, replace(params, seed=params.seed + level + 7919 * attempt))
        codes = backend.assign(residual, centroids).codes
        if not collapsed(codes, size):
            break
    return centroids, codes, attempt


def train_rq_kmeans(
    sample: np.ndarray,
    sizes: Sequence[int],
    backend: Backend,
    params: KMeansParams | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RQKMeans:
    """Train one k-means per level on the residual left by the previous levels; `progress(step, levels done,
    levels)` after each level."""
    params = params or KMeansParams()
    residual = Residuals(sample, backend.device)
    books: list[np.ndarray] = []
    timings: dict[str, float] = {}
    for level, size in enumerate(sizes):
        started = time.perf_counter()
        centroids, codes, retries = _train_level(backend, residual.rows, int(size), params, level)
        residual.subtract(centroids, codes)
        books.append(centroids)
        timings[f"train_level_{level + 1}_s"] = time.perf_counter() - started
        if retries:
            timings[f"collapse_retries_level_{level + 1}"] = retries
        if progress:
            progress("RQ-KMeans: levels trained", level + 1, len(sizes))
    return RQKMeans(books, backend, timings=timings)


def vectors_of(batch: pa.RecordBatch | pa.Table, column: str = "embedding") -> np.ndarray:
    """An (n, d) float32 array from a list or fixed-size-list column, without a Python loop."""
    arr = batch.column(column)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(len(arr), -1)


def encode_batches(
    model: SidModel,
    batches: Iterable[pa.RecordBatch],
    *,
    id_column: str = "item_id",
    column: str = "embedding",
    top: int = CANDIDATES,
) -> Iterator[tuple[list[str], Encoded]]:
    """Encode a stream of Arrow record batches; memory is bounded by the batch size, not the item count."""
    for batch in batches:
        if batch.num_rows:
            yield batch.column(id_column).to_pylist(), model.encode(vectors_of(batch, column), top)

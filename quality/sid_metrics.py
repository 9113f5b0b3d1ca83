"""Training-free SID metrics, exact over the whole corpus, counted on integer SID keys with NumPy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sid_index.codec import keys
from sid_index.levels import level_metrics


def occupancy(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Items per occupied full SID (one count per distinct SID)."""
    return np.unique(keys(codes, sizes), return_counts=True)[1]


def gini(counts: np.ndarray, population: int | None = None) -> float:
    """FORGE's Gini coefficient of items per SID, over the occupied SIDs (its `calculate_gini.py`).

    G = (N + 1) / N - 2·Σ x_i·r_i / (N·Σx), with N SIDs and r_i the rank of SID i when sorted by
    descending count (N for the smallest), summed exactly over (count, frequency) groups as FORGE does.
    `population` pads the occupied SIDs with empty ones up to that many slots (one per item gives
    `gini_padded_to_items`: 0 when every item has its own SID).
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(population if population is not None else len(counts))
    total = int(counts.sum())
    if n <= 0 or total <= 0:
        return 0.0
    if n < len(counts):
        raise ValueError(f"population {n} is smaller than the {len(counts)} occupied SIDs")
    values, freq = np.unique(counts, return_counts=True)
    before = n - len(counts) + np.concatenate([[0], np.cumsum(freq)[:-1]])  # SIDs with a smaller count
    first, last = n - before, n - before - freq + 1
    dot = int((values * ((first + last) * freq // 2)).sum())
    return (n + 1) / n - 2 * dot / (n * total)


def lorenz(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of SID occupancy: cumulative share of SIDs (x) against cumulative share of items (y)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    share_items = np.concatenate([[0.0], np.cumsum(x) / x.sum()]) if len(x) else np.array([0.0])
    share_sids = np.linspace(0, 1, len(share_items))
    return share_sids, share_items


def per_level(codes: np.ndarray, sizes: Sequence[int], suffix: str = "") -> dict:
    """Utilisation, entropy, perplexity and dead codes of every level, as lists keyed `<figure>_per_level<suffix>`."""
    levels = [level_metrics(codes[:, i].astype(np.int64), int(s)) for i, s in enumerate(sizes)]
    return {
        f"{key}_per_level{suffix}": [lv[name] for lv in levels]
        for key, name in (
            ("utilisation", "utilisation"),
            ("entropy", "entropy_bits"),
            ("perplexity", "perplexity"),
            ("dead_codes", "dead_codes"),
        )
    }


def distribution_metrics(codes: np.ndarray, sizes: Sequence[int]) -> dict:
    """Gini (FORGE's, and padded to one slot per item), collision and unique-SID rates, items per SID and
    per-level figures, exact and vectorised."""
    n = len(codes)
    counts = occupancy(codes, sizes)
    shared = counts[counts > 1].sum()
    return {
        "items": n,
        "occupied_sids": len(counts),
        "gini": gini(counts),
        "gini_padded_to_items": gini(counts, n),
        "collision_rate": float(shared / n) if n else 0.0,
        "unique_sid_rate": float(len(counts) / n) if n else 0.0,
        "max_items_per_sid": int(counts.max()) if n else 0,
        "mean_items_per_sid": float(n / len(counts)) if n else 0.0,
        **per_level(codes, sizes),
    }


def reconstruction_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean squared L2 distance between embeddings and their SID reconstruction."""
    return float(((x - x_hat) ** 2).sum(1).mean()) if len(x) else 0.0


def neighbour_recall(
    raw: np.ndarray, reconstructed: np.ndarray, k: int = 10, queries: int = 2000, seed: int = 0
) -> float:
    """Recall@k of the raw-space nearest neighbours when searching the reconstructed space (inner product)."""
    from quality.neighbours import knn

    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(len(raw), min(queries, len(raw)), replace=False))
    k = min(k, len(raw) - 1)
    truth = knn(raw[q], raw, k + 1)
    found = knn(reconstructed[q], reconstructed, k + 1)
    hits = [len((set(t) - {i}) & (set(f) - {i})) for i, t, f in zip(q, truth, found, strict=True)]
    return float(np.mean(hits) / k) if k > 0 else 0.0

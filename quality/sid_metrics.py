"""Training-free SID metrics, exact over the whole corpus, counted on integer SID keys with NumPy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sid_index.codec import keys


def occupancy(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Items per occupied full SID (one count per distinct SID)."""
    return np.unique(keys(codes, sizes), return_counts=True)[1]


def gini(counts: np.ndarray, population: int | None = None) -> float:
    """Gini coefficient of items per SID (FORGE), over `population` SID slots (default: one per item).

    Occupied SIDs are padded with empty ones up to the population, so one SID per item gives 0 and one
    SID holding all N items gives (N - 1) / N. G = 2·Σ i·x_(i) / (n·Σx) - (n + 1) / n, x ascending.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    n = int(population if population is not None else total)
    if n <= 0 or total <= 0:
        return 0.0
    if n < len(counts):
        raise ValueError(f"population {n} is smaller than the {len(counts)} occupied SIDs")
    x = np.sort(counts)
    ranks = np.arange(n - len(x) + 1, n + 1, dtype=np.float64)  # the zero padding takes ranks 1..n-len(x)
    return float(2 * (ranks * x).sum() / (n * total) - (n + 1) / n)


def lorenz(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of SID occupancy: cumulative share of SIDs (x) against cumulative share of items (y)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    share_items = np.concatenate([[0.0], np.cumsum(x) / x.sum()]) if len(x) else np.array([0.0])
    share_sids = np.linspace(0, 1, len(share_items))
    return share_sids, share_items


def level_metrics(codes: np.ndarray, size: int) -> dict:
    """Utilisation, entropy (bits), perplexity and dead codes of one level."""
    counts = np.bincount(codes, minlength=size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    used = int((counts > 0).sum())
    return {"size": size, "used": used, "utilisation": used / size, "dead_codes": size - used,
            "entropy_bits": entropy, "perplexity": float(2**entropy)}


def distribution_metrics(codes: np.ndarray, sizes: Sequence[int]) -> dict:
    """Gini, collision and unique-SID rates, items per SID and per-level figures, exact and vectorised."""
    n = len(codes)
    counts = occupancy(codes, sizes)
    shared = counts[counts > 1].sum()
    levels = [level_metrics(codes[:, i].astype(np.int64), int(s)) for i, s in enumerate(sizes)]
    return {
        "items": n, "occupied_sids": len(counts), "gini": gini(counts, n),
        "gini_occupied": gini(counts, len(counts)),
        "collision_rate": float(shared / n) if n else 0.0,
        "unique_sid_rate": float(len(counts) / n) if n else 0.0,
        "max_items_per_sid": int(counts.max()) if n else 0,
        "mean_items_per_sid": float(n / len(counts)) if n else 0.0,
        "utilisation_per_level": [lv["utilisation"] for lv in levels],
        "entropy_per_level": [lv["entropy_bits"] for lv in levels],
        "perplexity_per_level": [lv["perplexity"] for lv in levels],
        "dead_codes_per_level": [lv["dead_codes"] for lv in levels],
    }


def reconstruction_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean squared L2 distance between embeddings and their SID reconstruction."""
    return float(((x - x_hat) ** 2).sum(1).mean()) if len(x) else 0.0


def neighbour_recall(raw: np.ndarray, reconstructed: np.ndarray, k: int = 10, queries: int = 2000,
                     seed: int = 0) -> float:
    """Recall@k of the raw-space nearest neighbours when searching the reconstructed space (inner product)."""
    from quality.neighbours import knn

    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(len(raw), min(queries, len(raw)), replace=False))
    k = min(k, len(raw) - 1)
    truth = knn(raw[q], raw, k + 1)
    found = knn(reconstructed[q], reconstructed, k + 1)
    hits = [len((set(t) - {i}) & (set(f) - {i})) for i, t, f in zip(q, truth, found, strict=True)]
    return float(np.mean(hits) / k) if k > 0 else 0.0

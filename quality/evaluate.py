"""Evaluate one SID build: distribution metrics, reconstruction, neighbour recall and embedding hitrates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from quality.hitrate import Sessions, embedding_hitrate, random_codes
from quality.sid_metrics import distribution_metrics, neighbour_recall, reconstruction_error

REQUIRED_KEYS = ("gini", "collision_rate", "unique_sid_rate", "max_items_per_sid", "embedding_hitrate",
                 "embedding_hitrate_raw")


@dataclass(frozen=True)
class EvalSettings:
    """FORGE's defaults: K = 30 neighbours, 5,000 sessions, a gallery of about 500,000 items."""

    k: int = 30
    sessions: int = 5000
    gallery: int = 500_000
    recall_k: int = 10
    seed: int = 0
    device: str = "auto"


def gallery_rows(n: int, targets: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Rows forming the gallery: all items when they fit, else every session target plus a seeded sample."""
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    extra = rng.choice(n, size, replace=False)
    return np.unique(np.concatenate([targets, extra]))[: max(size, len(np.unique(targets)))]


def evaluate_build(codes: np.ndarray, sizes: Sequence[int], embeddings: np.ndarray,
                   decode: Callable[[np.ndarray], np.ndarray], sessions: Sessions,
                   settings: EvalSettings = EvalSettings()) -> dict:
    """All metrics of a build; `codes` and `embeddings` are aligned row by row, sessions index those rows."""
    metrics = distribution_metrics(codes, sizes)
    reconstructed = decode(codes)
    metrics["reconstruction_error"] = reconstruction_error(embeddings, reconstructed)
    metrics["neighbour_recall_at_k"] = neighbour_recall(embeddings, reconstructed, settings.recall_k,
                                                        seed=settings.seed)
    floor = decode(random_codes(len(codes), sizes, settings.seed))
    metrics.update({
        "embedding_hitrate": embedding_hitrate(sessions, reconstructed, settings.k, settings.device),
        "embedding_hitrate_raw": embedding_hitrate(sessions, embeddings, settings.k, settings.device),
        "embedding_hitrate_random": embedding_hitrate(sessions, floor, settings.k, settings.device),
        "hitrate_sessions": len(sessions), "hitrate_k": settings.k, "gallery_items": len(codes),
    })
    return metrics

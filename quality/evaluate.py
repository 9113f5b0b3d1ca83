"""Evaluate one SID build: distribution metrics, reconstruction, neighbour recall and embedding hitrates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from quality.hitrate import Sessions, embedding_hitrate, random_codes
from quality.sid_metrics import (
    distribution_metrics,
    gini,
    neighbour_recall,
    occupancy,
    per_level,
    reconstruction_error,
)

REQUIRED_KEYS = (
    "gini",
    "gini_padded_to_items",
    "collision_rate",
    "unique_sid_rate",
    "max_items_per_sid",
    "perplexity_per_level",
    "utilisation_per_level",
    "dead_codes_per_level",
    "embedding_hitrate",
    "embedding_hitrate_resolved",
    "embedding_hitrate_raw",
    "embedding_hitrate_random",
)


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


def evaluate_build(
    raw_codes: np.ndarray,
    codes: np.ndarray,
    sizes: Sequence[int],
    embeddings: np.ndarray,
    decode: Callable[[np.ndarray], np.ndarray],
    sessions: Sessions,
    settings: EvalSettings = EvalSettings(),
    resolved_sizes: Sequence[int] | None = None,
) -> dict:
    """All metrics of a build, rows aligned: the model's `raw_codes` (levels `sizes`), the resolved `codes`
    (levels `resolved_sizes`, which a suffix policy lengthens by one), `embeddings`; sessions index those rows.

    Gini, collision and occupancy figures are those of the resolved (published) SIDs; per-level figures,
    reconstruction, neighbour recall and the embedding hitrate are the model's, from its raw codes, as
    FORGE measures them. Resolved per-level figures and hitrate are kept with the suffix `_resolved`.
    """
    metrics = distribution_metrics(codes, resolved_sizes or sizes)
    metrics |= {f"{key}_resolved": metrics[key] for key in list(metrics) if key.endswith("_per_level")}
    metrics |= {"sizes": list(sizes), **per_level(raw_codes, sizes)}
    raw_counts = occupancy(raw_codes, sizes)
    metrics |= {"occupied_sids_raw": len(raw_counts), "gini_raw": gini(raw_counts)}
    reconstructed = decode(raw_codes)
    metrics["reconstruction_error"] = reconstruction_error(embeddings, reconstructed)
    metrics["neighbour_recall_at_k"] = neighbour_recall(
        embeddings, reconstructed, settings.recall_k, seed=settings.seed
    )
    floor = decode(random_codes(len(codes), sizes, settings.seed))
    k, device = settings.k, settings.device
    metrics.update(
        {
            "embedding_hitrate": embedding_hitrate(sessions, reconstructed, k, device),
            "embedding_hitrate_resolved": embedding_hitrate(sessions, decode(codes[:, : len(sizes)]), k, device),
            "embedding_hitrate_raw": embedding_hitrate(sessions, embeddings, k, device),
            "embedding_hitrate_random": embedding_hitrate(sessions, floor, k, device),
            "hitrate_sessions": len(sessions),
            "hitrate_k": k,
            "gallery_items": len(codes),
        }
    )
    return metrics

"""FORGE's embedding hitrate (Sec. 4.2 / App. A.6): can a session's target be found from its history?

For each session (history items → target item), take every history item's K nearest neighbours by inner
product among a gallery; the session is a hit when the target is in the union of those lists. The
metric is hits / sessions. With SID-reconstructed embeddings it measures what the SIDs keep; with raw
embeddings it is the ceiling; with random SIDs, the floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quality.neighbours import knn


@dataclass(frozen=True)
class Sessions:
    """Sessions as row positions into the gallery: `history` (flat), `offsets` (n+1), one `target` each."""

    history: np.ndarray
    offsets: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.target)


def sessions_from_ids(histories: Sequence[Sequence[str]], targets: Sequence[str], gallery_ids: Sequence[str],
                      limit: int = 5000, seed: int = 0) -> Sessions:
    """A seeded sample of up to `limit` sessions whose target and at least one history item are in the gallery."""
    position = {item: i for i, item in enumerate(gallery_ids)}
    usable = []
    for s, (hist, target) in enumerate(zip(histories, targets, strict=True)):
        known = [position[h] for h in hist if h in position]
        if known and target in position:
            usable.append((s, known, position[target]))
    rng = np.random.default_rng(seed)
    if len(usable) > limit:
        usable = [usable[i] for i in np.sort(rng.choice(len(usable), limit, replace=False))]
    lengths = [len(u[1]) for u in usable]
    return Sessions(np.array([h for u in usable for h in u[1]], dtype=np.int64),
                    np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                    np.array([u[2] for u in usable], dtype=np.int64))


def embedding_hitrate(sessions: Sessions, vectors: np.ndarray, k: int = 30, device: str = "auto") -> float:
    """Share of sessions whose target is among the union of the history items' k nearest neighbours."""
    if not len(sessions):
        return 0.0
    queries, inverse = np.unique(sessions.history, return_inverse=True)
    neighbours = knn(vectors[queries], vectors, k, device)
    per_row = neighbours[inverse]
    session_of = np.repeat(np.arange(len(sessions)), np.diff(sessions.offsets))
    hit_rows = (per_row == sessions.target[session_of][:, None]).any(1)
    hits = np.zeros(len(sessions), dtype=bool)
    np.logical_or.at(hits, session_of, hit_rows)
    return float(hits.mean())


def random_codes(n: int, sizes: Sequence[int], seed: int = 0) -> np.ndarray:
    """Uniformly random SIDs for `n` items: the floor of the hitrate."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in sizes], axis=1).astype(np.int32)

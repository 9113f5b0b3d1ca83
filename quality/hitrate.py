"""FORGE's embedding hitrate (Sec. 4.2 / App. A.6): can a session's target be found from its history?

As FORGE computes it: every vector is L2-normalised; for each history item, an exact inner-product search
over the gallery takes the top K + 1 and drops the item itself (K kept); the session is a hit when its
target is in the union of its history items' lists; the metric is hits / sessions. Decoded from the SID
model's raw codes it measures what the SIDs keep; from the raw embeddings it is the ceiling; from random
SIDs, the floor. Equal scores (items sharing a SID share a reconstruction) rank by gallery position.

Exact and deterministic without materialising neighbour lists: scores are computed once per distinct
vector, and a target's position in a history item's list is the number of gallery items ranked above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Sessions:
    """Sessions as row positions into the gallery: `history` (flat), `offsets` (n+1), one `target` each."""

    history: np.ndarray
    offsets: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.target)


def sessions_from_ids(
    histories: Sequence[Sequence[str]],
    targets: Sequence[str],
    gallery_ids: Sequence[str],
    limit: int = 5000,
    seed: int = 0,
) -> Sessions:
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
    return Sessions(
        np.array([h for u in usable for h in u[1]], dtype=np.int64),
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        np.array([u[2] for u in usable], dtype=np.int64),
    )


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


@dataclass(frozen=True)
class _Gallery:
    """Distinct vectors of the gallery: `group` of each row, `size` and sorted `members` of each group, and
    each row's `rank` (rows of its group before it)."""

    vectors: torch.Tensor
    group: np.ndarray
    size: torch.Tensor
    members: np.ndarray
    starts: np.ndarray
    rank: np.ndarray

    @staticmethod
    def of(vectors: np.ndarray, device: torch.device) -> _Gallery:
        unit = np.ascontiguousarray(normalised(vectors))
        rows = unit.view(np.dtype((np.void, unit.dtype.itemsize * unit.shape[1]))).ravel()
        _, first, group = np.unique(rows, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # groups numbered by their first row
        renumber = np.empty_like(order)
        renumber[order] = np.arange(len(order))
        group = renumber[group.ravel()]
        members = np.argsort(group, kind="stable")
        size = np.bincount(group, minlength=len(order))
        starts = np.concatenate([[0], np.cumsum(size)[:-1]])
        rank = np.empty(len(group), dtype=np.int64)
        rank[members] = np.arange(len(group)) - np.repeat(starts, size)
        return _Gallery(
            torch.from_numpy(unit[first[order]]).to(device),
            group,
            torch.from_numpy(size).to(device),
            members,
            starts,
            rank,
        )

    def position(self, scores: torch.Tensor, row: int) -> int:
        """Items ranked above gallery `row` in a query's list: higher score, or equal score and earlier row."""
        s = scores[self.group[row]]
        above = int(self.size[scores > s].sum())
        for g in torch.nonzero(scores == s).flatten().tolist():
            block = self.members[self.starts[g] : self.starts[g] + int(self.size[g])]
            above += int(np.searchsorted(block, row))
        return above


def embedding_hitrate(
    sessions: Sessions, vectors: np.ndarray, k: int = 30, device: str = "auto", block_bytes: int = 1 << 28
) -> float:
    """Share of sessions whose target is among the union of the history items' k nearest neighbours, the
    item itself excluded, on L2-normalised `vectors` (FORGE's embedding hitrate, exact)."""
    if not len(sessions):
        return 0.0
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    gallery = _Gallery.of(vectors, dev)
    n_groups = len(gallery.size)
    session_of = np.repeat(np.arange(len(sessions)), np.diff(sessions.offsets))
    query, target = sessions.history, sessions.target[session_of]
    query_group = gallery.group[query]
    hits = np.zeros(len(sessions), dtype=bool)
    by_group = np.argsort(query_group, kind="stable")
    groups, first = np.unique(query_group[by_group], return_index=True)
    chunk = max(1, block_bytes // (4 * n_groups))
    kk = min(k + 1, n_groups)
    for start in range(0, len(groups), chunk):
        block = groups[start : start + chunk]
        scores = gallery.vectors[torch.from_numpy(block).to(dev)] @ gallery.vectors.T
        top, top_group = torch.topk(scores, kk, dim=1)
        stop = first[start + chunk] if start + chunk < len(groups) else len(by_group)
        pairs = by_group[first[start] : stop]
        pairs = pairs[target[pairs] != query[pairs]]  # the item itself is never its own neighbour
        local = torch.from_numpy(np.searchsorted(block, query_group[pairs])).to(dev)
        t_group = torch.from_numpy(gallery.group[target[pairs]]).to(dev)
        t_score = scores[local, t_group]
        q_score = scores[local, torch.from_numpy(query_group[pairs]).to(dev)]
        # A target scoring below the (k+1)-th best group has at least k + 1 items above it: a miss.
        near = t_score >= top[local, -1]
        pairs = pairs[near.cpu().numpy()]
        local, t_group, t_score, q_score = local[near], t_group[near], t_score[near], q_score[near]
        if not len(pairs):
            continue
        values, members = top[local], top_group[local]
        position = (gallery.size[members] * (values > t_score[:, None])).sum(1)
        position += torch.from_numpy(gallery.rank[target[pairs]]).to(dev)
        # Ties with another group, or at the edge of the top k + 1: count over the whole row.
        slow = (
            (
                ((values == t_score[:, None]) & (members != t_group[:, None])).any(1)
                | ((t_score == values[:, -1]) & (kk < n_groups))
            )
            .cpu()
            .numpy()
        )
        ranks = position.cpu().numpy()
        for i in np.flatnonzero(slow).tolist():
            ranks[i] = gallery.position(scores[int(local[i])], int(target[pairs[i]]))
        q_first = (
            ((q_score > t_score) | ((q_score == t_score) & torch.from_numpy(query[pairs] < target[pairs]).to(dev)))
            .cpu()
            .numpy()
        )
        np.logical_or.at(hits, session_of[pairs], ranks - q_first < k)
    return float(hits.mean())


def random_codes(n: int, sizes: Sequence[int], seed: int = 0) -> np.ndarray:
    """Uniformly random SIDs for `n` items: the floor of the hitrate."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in sizes], axis=1).astype(np.int32)

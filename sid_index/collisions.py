"""Collision resolution: what to do when several items land on one full semantic ID.

- `knn_capacity` (FORGE): at most `capacity` items per SID; the rest move to the nearest free last-level
  code under the same prefix, in order of the distance of their last residual to that code.
- `random_capacity`: the same with seeded random candidate codes.
- `suffix` (TIGER): one extra level numbering the items of each SID, so every SID is unique.
- `none`: codes as assigned.

Everything is vectorised over integer SID keys; published items (`fixed`) count towards capacity and
never move. Items only ever move within their SID prefix, so a catalogue can be resolved prefix group by
prefix group (`resolve_by_prefix`, or the Spark engine's groups) with the same result: ties break on a hash
of the item id (`tiebreak`), then on position, and random candidate codes are a hash of the item and the
seed, never of the order in which items arrive. The candidates of an item are only computed when its SID
is over capacity (`CandidateSource`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from sid_index.codec import keys, prefix_keys

Policy = Literal["knn_capacity", "random_capacity", "suffix", "none"]
METHODS: tuple[str, ...] = get_args(Policy)
CandidateSource = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""rows -> (candidate last-level codes, their squared distances), each (len(rows), T), candidate 0 the own code."""
Tiebreak = np.ndarray | Callable[[np.ndarray], np.ndarray]
"""Each item's tie-break hash (uint32), or a function giving those of the positions asked for (not held)."""


@dataclass
class Resolution:
    """Resolved codes, their level sizes (suffix adds a level) and the figures of the resolution."""

    codes: np.ndarray
    sizes: list[int]
    report: dict = field(default_factory=dict)
    unplaced: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def group_stats(sid_keys: np.ndarray) -> tuple[float, int]:
    """Share of items that share their SID with another item, and the largest group."""
    if not len(sid_keys):
        return 0.0, 0
    _, inverse, counts = np.unique(sid_keys, return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).mean()), int(counts.max())


def rank_in_groups(group: np.ndarray, priority: np.ndarray, tiebreak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of rows by (group, priority, tiebreak, position) and each row's rank inside its group."""
    order = np.lexsort((np.arange(len(group)), tiebreak, priority, group))
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    lengths = np.diff(np.r_[starts, len(g)])
    rank = np.empty(len(g), dtype=np.int64)
    rank[order] = np.arange(len(g)) - np.repeat(starts, lengths)
    return order, rank


class Occupancy:
    """How many items hold each SID key (sorted unique keys with counts): `of(keys)`, `add(keys)`."""

    def __init__(self, sid_keys: np.ndarray):
        self.keys, self.counts = np.unique(sid_keys, return_counts=True)

    def of(self, query: np.ndarray) -> np.ndarray:
        if not len(self.keys):
            return np.zeros(len(query), dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
        return np.where(self.keys[pos] == query, self.counts[pos], 0)

    def add(self, sid_keys: np.ndarray) -> None:
        merged = np.concatenate([np.repeat(self.keys, self.counts), sid_keys])
        self.keys, self.counts = np.unique(merged, return_counts=True)


def resolve(
    codes: np.ndarray,
    candidates: np.ndarray,
    candidate_distances: np.ndarray,
    sizes: Sequence[int],
    method: Policy = "knn_capacity",
    capacity: int = 5,
    seed: int = 0,
    fixed: np.ndarray | None = None,
    tiebreak: np.ndarray | None = None,
) -> Resolution:
    """Resolve collisions among `codes` (n, L) with every item's candidates at hand; `fixed` are the (m, L)
    codes of published items."""
    return resolve_on_demand(
        codes,
        candidate_distances[:, 0],
        lambda rows: (candidates[rows], candidate_distances[rows]),
        sizes,
        method,
        capacity,
        seed,
        fixed,
        tiebreak,
        candidates.shape[1],
    )


def resolve_on_demand(
    codes: np.ndarray,
    priority: np.ndarray,
    candidates_of: CandidateSource,
    sizes: Sequence[int],
    method: Policy = "knn_capacity",
    capacity: int = 5,
    seed: int = 0,
    fixed: np.ndarray | None = None,
    tiebreak: np.ndarray | None = None,
    width: int = 32,
) -> Resolution:
    """Resolve collisions among `codes` (n, L); `priority` is each item's distance to its own code (the nearer
    keep their SID), `candidates_of` is asked once, for the items that must move; `width` random codes are
    tried per item by `random_capacity`."""
    if method not in METHODS:
        raise ValueError(f"unknown collision method {method!r}; choose one of {', '.join(METHODS)}")
    sizes = [int(s) for s in sizes]
    fixed = np.zeros((0, len(sizes)), dtype=np.int32) if fixed is None else fixed
    tiebreak = np.arange(len(codes), dtype=np.uint32) if tiebreak is None else tiebreak
    sid = keys(codes, sizes)
    before, largest_before = group_stats(np.concatenate([sid, keys(fixed, sizes)]))
    report = {
        "method": method,
        "capacity": capacity,
        "items": len(codes),
        "fixed_items": len(fixed),
        "collision_rate_before": before,
        "largest_group_before": largest_before,
    }
    if method == "none":
        return Resolution(
            codes.copy(),
            sizes,
            {
                **report,
                "collision_rate_after": before,
                "largest_group_after": largest_before,
                "items_moved": 0,
                "unplaced": 0,
                "unplaced_reasons": {},
            },
        )
    if method == "suffix":
        occupied = Occupancy(keys(fixed, sizes)).of(sid)
        _, rank = rank_in_groups(sid, priority, tiebreak)
        suffix = (rank + occupied).astype(np.int32)
        out = np.concatenate([codes, suffix[:, None]], axis=1)
        new_sizes = [*sizes, int(suffix.max()) + 1 if len(suffix) else 1]
        after, largest = group_stats(keys(out, new_sizes))
        return Resolution(
            out,
            new_sizes,
            {
                **report,
                "collision_rate_after": after,
                "largest_group_after": largest,
                "items_moved": 0,
                "unplaced": 0,
                "unplaced_reasons": {},
                "suffix_size": new_sizes[-1],
            },
        )
    return _capacity(codes, priority, candidates_of, sizes, method, capacity, seed, fixed, tiebreak, width, report)


def random_proposals(tiebreak: np.ndarray, seed: int, width: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """`width` seeded random last-level codes per item and their random weights, a hash of (item, seed, round)
    so that they do not depend on which other items are resolved with it."""
    salt = np.uint64((seed & 0xFFFFFFFF) * 0xBF58476D1CE4E5B9 % (1 << 64))
    mix: np.ndarray = tiebreak.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)
    mix = _splitmix(np.bitwise_xor(mix + np.arange(width, dtype=np.uint64), salt))
    codes = (mix % np.uint64(last)).astype(np.int32)
    weights = (_splitmix(mix) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return codes, weights


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def keeps_sid(
    sid: np.ndarray, priority: np.ndarray, tiebreak: np.ndarray, held: Occupancy, capacity: int
) -> np.ndarray:
    """Which items keep their SID: the nearest (then by tie-break) of each SID, up to `capacity` less the
    items already `held` there."""
    _, rank = rank_in_groups(sid, priority, tiebreak)
    return rank < capacity - held.of(sid)


def _capacity(
    codes, priority, candidates_of, sizes, method, capacity, seed, fixed, tiebreak, width, report
) -> Resolution:
    last = sizes[-1]
    sid = keys(codes, sizes)
    prefix = prefix_keys(codes, sizes)
    occupancy = Occupancy(keys(fixed, sizes))
    placed = keeps_sid(sid, priority, tiebreak, occupancy, capacity)
    occupancy.add(sid[placed])
    out = codes.copy()
    todo = np.flatnonzero(~placed)
    if method == "random_capacity":
        proposals, weights = random_proposals(tiebreak[todo], seed, width, last)
    else:
        proposals, weights = candidates_of(todo)
    moved = np.zeros(len(codes), dtype=bool)
    waiting = np.ones(len(todo), dtype=bool)
    first_round = 1 if method == "knn_capacity" else 0  # candidate 0 is the item's own, full, code
    for r in range(first_round, proposals.shape[1]):
        rows = np.flatnonzero(waiting)
        if not len(rows):
            break
        target_code = proposals[rows, r].astype(np.int64)
        target = prefix[todo[rows]] * last + target_code
        _, within = rank_in_groups(target, weights[rows, r], tiebreak[todo[rows]])
        accept = within < capacity - occupancy.of(target)
        chosen = rows[accept]
        out[todo[chosen], -1] = proposals[chosen, r]
        moved[todo[chosen]] = True
        waiting[chosen] = False
        occupancy.add(target[accept])
    unplaced = todo[waiting]
    reasons: dict[str, int] = {}
    if len(unplaced):
        per_prefix = Occupancy(np.concatenate([prefix_keys(fixed, sizes), prefix])).of(prefix[unplaced])
        full = per_prefix > capacity * last
        reasons = {
            k: int(v)
            for k, v in {
                f"prefix full (more than {capacity} x {last} items under the prefix)": int(full.sum()),
                f"no free code among its {proposals.shape[1]} candidate last-level codes": int((~full).sum()),
            }.items()
            if v
        }
    after, largest = group_stats(np.concatenate([keys(out, sizes), keys(fixed, sizes)]))
    moved &= out[:, -1] != codes[:, -1]
    return Resolution(
        out,
        list(sizes),
        {
            **report,
            "collision_rate_after": after,
            "largest_group_after": largest,
            "items_moved": int(moved.sum()),
            "unplaced": len(unplaced),
            "unplaced_reasons": reasons,
        },
        unplaced,
    )


def resolve_by_prefix(
    codes: np.ndarray,
    priority: np.ndarray,
    candidates_of: CandidateSource,
    sizes: Sequence[int],
    method: Policy = "knn_capacity",
    capacity: int = 5,
    seed: int = 0,
    chunks: int = 8,
    tiebreak: Tiebreak | None = None,
    width: int = 32,
) -> Resolution:
    """The same resolution computed in `chunks` independent parts split by SID prefix.

    Items only ever move within their prefix, so each part can run on its own (one after the other here,
    or on separate workers) and memory is bounded by the largest part: the path to hundreds of millions.
    """
    tiebreak_of = tiebreaks_of(tiebreak)
    if method in ("suffix", "none") or chunks < 2:
        everyone = tiebreak_of(np.arange(len(codes)))
        return resolve_on_demand(codes, priority, candidates_of, sizes, method, capacity, seed, None, everyone, width)
    part_of = prefix_parts(codes, sizes, chunks)
    out = codes.copy()
    moved, unplaced = 0, []
    reasons: dict[str, int] = {}
    shared = {"before": 0.0, "after": 0.0}
    largest = {"before": 0, "after": 0}
    for part in range(chunks):
        rows = np.flatnonzero(part_of == part)
        if not len(rows):
            continue
        res = resolve_on_demand(
            codes[rows],
            priority[rows],
            _within(candidates_of, rows),
            sizes,
            method,
            capacity,
            seed,
            None,
            tiebreak_of(rows),
            width,
        )
        out[rows] = res.codes
        moved += res.report["items_moved"]
        unplaced.append(rows[res.unplaced])
        for reason, count in res.report["unplaced_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + count
        for when in ("before", "after"):  # a SID lies in one part: the figures add up exactly
            shared[when] += res.report[f"collision_rate_{when}"] * len(rows)
            largest[when] = max(largest[when], res.report[f"largest_group_{when}"])
    lost = np.concatenate(unplaced) if unplaced else np.zeros(0, dtype=np.int64)
    return Resolution(
        out,
        list(sizes),
        {
            "method": method,
            "capacity": capacity,
            "items": len(codes),
            "fixed_items": 0,
            "chunks": chunks,
            "collision_rate_before": shared["before"] / max(len(codes), 1),
            "largest_group_before": largest["before"],
            "collision_rate_after": shared["after"] / max(len(codes), 1),
            "largest_group_after": largest["after"],
            "items_moved": moved,
            "unplaced": len(lost),
            "unplaced_reasons": reasons,
        },
        lost,
    )


def tiebreaks_of(tiebreak: Tiebreak | None) -> Callable[[np.ndarray], np.ndarray]:
    """The tie-break hashes of given positions (their positions themselves when there are none)."""
    if tiebreak is None:
        return lambda rows: rows.astype(np.uint32)
    if callable(tiebreak):
        return tiebreak
    return lambda rows: tiebreak[rows]


def _within(candidates_of: CandidateSource, rows: np.ndarray) -> CandidateSource:
    """`candidates_of` for positions inside the subset `rows`."""
    return lambda subset: candidates_of(rows[subset])


def prefix_parts(codes: np.ndarray, sizes: Sequence[int], parts: int, block: int = 1 << 20) -> np.ndarray:
    """Which of `parts` parts each item's SID prefix falls in (int16, computed in blocks to bound memory)."""
    out = np.empty(len(codes), dtype=np.int16)
    for start in range(0, len(codes), block):
        out[start : start + block] = prefix_keys(codes[start : start + block], sizes) % parts
    return out

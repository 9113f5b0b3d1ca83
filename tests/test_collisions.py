"""Collision resolution: capacity respected, nearest free code, suffix unique, published SIDs never move."""

import numpy as np
import pytest

from sid_index.codec import keys
from sid_index.collisions import group_stats, resolve

SIZES = [4, 4, 8]


def _crowd(n=12, seed=0):
    """n items on one SID (0, 1, 3), each with its own ranking of last-level codes."""
    rng = np.random.default_rng(seed)
    codes = np.tile(np.array([[0, 1, 3]], dtype=np.int32), (n, 1))
    others = np.array([c for c in range(8) if c != 3])
    candidates = np.stack([np.r_[3, rng.permutation(others)] for _ in range(n)]).astype(np.int32)
    distances = np.sort(rng.random((n, 8)).astype(np.float32), axis=1)
    return codes, candidates, distances


def test_knn_capacity_keeps_the_closest_and_moves_the_rest_to_their_nearest_free_code():
    codes, cands, dists = _crowd()
    result = resolve(codes, cands, dists, SIZES, "knn_capacity", capacity=5)
    counts = np.unique(keys(result.codes, SIZES), return_counts=True)[1]
    assert counts.max() <= 5 and result.report["unplaced"] == 0
    stay = np.argsort(dists[:, 0], kind="stable")[:5]
    assert (result.codes[stay, 2] == 3).all()
    assert result.report["items_moved"] == 7
    assert (result.codes[:, :2] == [0, 1]).all()  # prefixes never change
    moved = np.setdiff1d(np.arange(12), stay)
    for i in moved:  # each moved item took one of its own candidates
        assert result.codes[i, 2] in cands[i, 1:]
    # the first moved item by distance to its 2nd candidate got exactly that candidate
    first = moved[np.argmin(dists[moved, 1])]
    assert result.codes[first, 2] == cands[first, 1]


def test_report_matches_an_independent_count():
    codes, cands, dists = _crowd(n=7)
    codes[0] = [2, 2, 2]
    result = resolve(codes, cands, dists, SIZES, "knn_capacity", capacity=2)
    sid_before = [tuple(r) for r in codes]
    shared = sum(sid_before.count(s) > 1 for s in sid_before) / len(sid_before)
    assert result.report["collision_rate_before"] == pytest.approx(shared)
    assert result.report["largest_group_before"] == 6
    sid_after = [tuple(r) for r in result.codes]
    assert max(sid_after.count(s) for s in sid_after) == result.report["largest_group_after"] <= 2
    assert result.report["collision_rate_after"] == pytest.approx(
        sum(sid_after.count(s) > 1 for s in sid_after) / len(sid_after)
    )


def test_unplaceable_items_keep_their_sid_and_say_why():
    codes = np.zeros((10, 2), dtype=np.int32)
    cands = np.tile(np.array([[0, 1]], dtype=np.int32), (10, 1))
    dists = np.tile(np.array([[0.1, 0.2]], dtype=np.float32), (10, 1))
    result = resolve(codes, cands, dists, [1, 2], "knn_capacity", capacity=2)
    assert result.report["unplaced"] == 6
    assert result.report["unplaced_reasons"] == {"prefix full (more than 2 x 2 items under the prefix)": 6}


def test_suffix_makes_every_sid_unique_and_none_changes_nothing():
    codes, cands, dists = _crowd()
    suffixed = resolve(codes, cands, dists, SIZES, "suffix")
    assert suffixed.sizes == [4, 4, 8, 12] and suffixed.codes.shape == (12, 4)
    assert group_stats(keys(suffixed.codes, suffixed.sizes)) == (0.0, 1)
    untouched = resolve(codes, cands, dists, SIZES, "none")
    np.testing.assert_array_equal(untouched.codes, codes)
    assert untouched.report["collision_rate_after"] == 1.0


def test_random_capacity_is_seeded():
    codes, cands, dists = _crowd(n=20)
    a = resolve(codes, cands, dists, SIZES, "random_capacity", capacity=3, seed=1)
    b = resolve(codes, cands, dists, SIZES, "random_capacity", capacity=3, seed=1)
    np.testing.assert_array_equal(a.codes, b.codes)
    assert np.unique(keys(a.codes, SIZES), return_counts=True)[1].max() <= 3


def test_published_items_count_towards_capacity_and_never_move():
    codes, cands, dists = _crowd(n=4)
    fixed = np.array([[0, 1, 3]] * 4 + [[0, 1, int(cands[0, 1])]] * 5, dtype=np.int32)
    result = resolve(codes, cands, dists, SIZES, "knn_capacity", capacity=5, fixed=fixed)
    everything = np.concatenate([result.codes, fixed])
    assert np.unique(keys(everything, SIZES), return_counts=True)[1].max() <= 5
    assert (result.codes[:, 2] == 3).sum() == 1
    assert not (result.codes[:, 2] == cands[0, 1]).any()  # that code already holds 5 published items


def test_ten_thousand_items_resolve_with_capacity():
    rng = np.random.default_rng(0)
    n, sizes = 10_000, [16, 16, 64]
    codes = np.stack([rng.integers(0, 16, n), rng.integers(0, 16, n), rng.zipf(2.0, n) % 64], 1).astype(np.int32)
    cands = np.concatenate([codes[:, 2:], np.stack([rng.permutation(64)[:31] for _ in range(n)])], 1).astype(np.int32)
    dists = np.sort(rng.random((n, 32)), 1).astype(np.float32)
    result = resolve(codes, cands, dists, sizes, "knn_capacity", capacity=5)
    placed = np.setdiff1d(np.arange(n), result.unplaced)
    counts = np.unique(keys(result.codes[placed], sizes), return_counts=True)[1]
    assert counts.max() <= 5
    assert result.report["collision_rate_after"] < result.report["collision_rate_before"]


@pytest.mark.parametrize("policy", ["knn_capacity", "random_capacity", "suffix"])
def test_resolving_by_prefix_chunks_gives_the_same_codes(policy):
    from sid_index.collisions import resolve_by_prefix

    rng = np.random.default_rng(3)
    n, sizes = 5_000, [8, 8, 32]
    codes = np.stack([rng.integers(0, 8, n), rng.integers(0, 8, n), rng.zipf(2.0, n) % 32], 1).astype(np.int32)
    cands = np.concatenate([codes[:, 2:], np.stack([rng.permutation(32)[:15] for _ in range(n)])], 1).astype(np.int32)
    dists = np.round(np.sort(rng.random((n, 16)), 1), 2).astype(np.float32)  # rounded: many exact ties
    tiebreak = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    whole = resolve(codes, cands, dists, sizes, policy, capacity=3, tiebreak=tiebreak)
    asked = []

    def candidates_of(rows):
        asked.append(rows)
        return cands[rows], dists[rows]

    parts = resolve_by_prefix(codes, dists[:, 0], candidates_of, sizes, policy, 3, 0, 7, tiebreak, 16)
    np.testing.assert_array_equal(whole.codes, parts.codes)
    for key in ("collision_rate_after", "items_moved", "unplaced", "largest_group_after"):
        assert whole.report.get(key) == parts.report.get(key)
    if policy != "knn_capacity":
        assert asked == []


def test_a_shuffled_catalogue_resolves_to_the_same_codes_per_item():
    rng = np.random.default_rng(4)
    n, sizes = 3_000, [4, 4, 16]
    codes = np.stack([rng.integers(0, 4, n), rng.integers(0, 4, n), rng.zipf(2.0, n) % 16], 1).astype(np.int32)
    cands = np.concatenate([codes[:, 2:], np.stack([rng.permutation(16)[:7] for _ in range(n)])], 1).astype(np.int32)
    dists = np.zeros((n, 8), dtype=np.float32)  # every distance ties: only the tie-break orders items
    tiebreak = rng.permutation(n).astype(np.uint32)
    order = rng.permutation(n)
    first = resolve(codes, cands, dists, sizes, "knn_capacity", capacity=2, tiebreak=tiebreak)
    again = resolve(
        codes[order], cands[order], dists[order], sizes, "knn_capacity", capacity=2, tiebreak=tiebreak[order]
    )
    np.testing.assert_array_equal(first.codes[order], again.codes)

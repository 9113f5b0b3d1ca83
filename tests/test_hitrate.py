"""FORGE embedding hitrate: equal to a brute-force reference; raw embeddings beat random SIDs."""

import numpy as np
import polars as pl

from ingest.synthetic import Generator
from quality.hitrate import embedding_hitrate, random_codes, sessions_from_ids
from sid_index.kmeans import KMeansParams, TorchBackend
from sid_index.rq import train_rq_kmeans


def _forge_brute_force(histories, targets, vectors, k):
    """FORGE's algorithm written out plainly: normalise, exact inner-product top k + 1 of each history item
    (equal scores by gallery position), drop the item itself, keep k, hit when the target is in the union."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    hits = 0
    for hist, target in zip(histories, targets, strict=True):
        union = set()
        for h in hist:
            score_of = {}
            for row in unit:  # one score per distinct vector, so equal vectors tie exactly
                score_of.setdefault(row.tobytes(), float(np.dot(row.astype(np.float64), unit[h].astype(np.float64))))
            scores = np.array([score_of[row.tobytes()] for row in unit])
            top = [int(i) for i in np.lexsort((np.arange(len(unit)), -scores))[: k + 1]]
            union |= set([i for i in top if i != h][:k])
        hits += target in union
    return hits / len(targets)


def _sessions(rng, n, count):
    ids = [f"i{i}" for i in range(n)]
    histories = [[f"i{j}" for j in rng.choice(n, rng.integers(1, 6), replace=False)] for _ in range(count)]
    targets = [f"i{t}" for t in rng.integers(0, n, count)]
    targets[:10] = [h[0] for h in histories[:10]]  # targets inside their own history
    return sessions_from_ids(histories, targets, ids), histories, targets


def _ints(names):
    return [int(x[1:]) for x in names]


def test_hitrate_equals_forges_algorithm_on_distinct_vectors():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(80, 8)).astype(np.float32) * rng.uniform(0.5, 3, (80, 1)).astype(np.float32)
    sessions, histories, targets = _sessions(rng, 80, 60)
    expected = _forge_brute_force([_ints(h) for h in histories], _ints(targets), vectors, 5)
    assert embedding_hitrate(sessions, vectors, k=5, device="cpu") == expected


def test_hitrate_equals_forges_algorithm_on_decoded_codes_with_shared_sids():
    """Raw codes put several items on one SID: their reconstructions tie, and the item itself is excluded."""
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(150, 8)).astype(np.float32)
    model = train_rq_kmeans(vectors, [4, 3], TorchBackend("cpu"), KMeansParams(iters=5))
    decoded = model.decode(model.encode(vectors).codes)
    assert len(np.unique(decoded, axis=0)) < 20  # many items per reconstruction
    sessions, histories, targets = _sessions(rng, 150, 80)
    for k in (3, 10, 30):
        expected = _forge_brute_force([_ints(h) for h in histories], _ints(targets), decoded, k)
        assert embedding_hitrate(sessions, decoded, k=k, device="cpu", block_bytes=4 * 7) == expected


def test_the_item_itself_is_never_a_hit_and_norms_do_not_matter():
    vectors = np.eye(4, dtype=np.float32)
    # history [0] -> target 0: only the item itself would find it
    own = sessions_from_ids([["a"]], ["a"], ["a", "b", "c", "d"])
    assert embedding_hitrate(own, vectors, k=3, device="cpu") == 0.0
    scaled = np.array([[1, 0], [10, 1], [0.1, 0.0], [0, 1]], dtype=np.float32)
    # normalised, item 2 points exactly like item 0 and comes first; unnormalised, item 1 would win
    near = sessions_from_ids([["a"]], ["c"], ["a", "b", "c", "d"])
    assert embedding_hitrate(near, scaled, k=1, device="cpu") == 1.0


def test_raw_embeddings_beat_random_sids_on_structured_data():
    gen = Generator("tiny", seed=0)
    vectors = gen.embeddings()
    events = gen.events()
    seq = events.group_by("user_id", maintain_order=True).agg(pl.col("item_id"))
    histories = [items[:-1] for items in seq["item_id"].to_list()]
    targets = [items[-1] for items in seq["item_id"].to_list()]
    sessions = sessions_from_ids(histories, targets, list(gen.item_ids))
    model = train_rq_kmeans(vectors, [8, 8, 8], TorchBackend("cpu"), KMeansParams(iters=10))
    raw = embedding_hitrate(sessions, vectors, k=10, device="cpu")
    sid = embedding_hitrate(sessions, model.decode(model.encode(vectors).codes), k=10, device="cpu")
    floor = embedding_hitrate(sessions, model.decode(random_codes(len(vectors), [8, 8, 8])), k=10, device="cpu")
    assert raw >= floor + 0.1
    assert sid > floor

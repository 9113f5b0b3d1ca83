"""FORGE embedding hitrate: equal to a brute-force reference; raw embeddings beat random SIDs."""

import numpy as np
import polars as pl

from lake.sources.synthetic import Generator
from quality.hitrate import embedding_hitrate, random_codes, sessions_from_ids
from sid_index.kmeans import KMeansParams, TorchBackend
from sid_index.rq import train_rq_kmeans


def _brute_force(histories, targets, vectors, k):
    hits = 0
    for hist, target in zip(histories, targets, strict=True):
        union = set()
        for h in hist:
            scores = vectors @ vectors[h]
            union |= set(np.argsort(-scores, kind="stable")[:k].tolist())
        hits += target in union
    return hits / len(targets)


def test_hitrate_equals_brute_force():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    ids = [f"i{i}" for i in range(60)]
    histories = [[f"i{j}" for j in rng.choice(60, rng.integers(1, 5), replace=False)] for _ in range(40)]
    targets = [f"i{t}" for t in rng.integers(0, 60, 40)]
    sessions = sessions_from_ids(histories, targets, ids)
    expected = _brute_force([[int(h[1:]) for h in hist] for hist in histories], [int(t[1:]) for t in targets],
                            vectors, 5)
    assert embedding_hitrate(sessions, vectors, k=5, device="cpu") == expected


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

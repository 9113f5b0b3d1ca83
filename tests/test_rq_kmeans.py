"""RQ-KMeans: clusters recovered, error falling per level, determinism, streaming = in memory, backends agree."""

import numpy as np
import pyarrow as pa
import pytest

from sid_index.kmeans import FaissBackend, KMeansParams, TorchBackend
from sid_index.rq import encode_batches, train_rq_kmeans
from tests.helpers import planted, purity

BACKENDS = [TorchBackend("cpu"), FaissBackend()]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_level_one_recovers_the_planted_clusters(backend):
    x, labels = planted()
    model = train_rq_kmeans(x, [8, 8, 8], backend, KMeansParams(iters=20, seed=0, init="kmeans++", restarts=3))
    codes = model.encode(x).codes
    assert purity(codes[:, 0], labels) == 1.0
    assert len(np.unique(codes[:, 0])) == 8


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_reconstruction_error_falls_with_each_level(backend):
    x, _ = planted(noise=0.3)
    model = train_rq_kmeans(x, [8, 16, 16], backend, KMeansParams(iters=15))
    encoded = model.encode(x)
    per_level = encoded.errors.mean(0)
    assert per_level[0] > per_level[1] > per_level[2]
    np.testing.assert_allclose(
        ((x - model.decode(encoded.codes)) ** 2).sum(1), encoded.errors[:, -1], rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_same_seed_same_codes(backend):
    x, _ = planted(noise=0.3, seed=3)
    a = train_rq_kmeans(x, [8, 8, 8], backend, KMeansParams(iters=10, seed=5)).encode(x).codes
    b = train_rq_kmeans(x, [8, 8, 8], backend, KMeansParams(iters=10, seed=5)).encode(x).codes
    np.testing.assert_array_equal(a, b)


def test_streaming_assignment_equals_in_memory():
    x, _ = planted(noise=0.3)
    model = train_rq_kmeans(x, [8, 8, 8], TorchBackend("cpu"), KMeansParams(iters=10))
    table = pa.table(
        {"item_id": [f"i{i}" for i in range(len(x))], "embedding": pa.array(x.tolist(), type=pa.list_(pa.float32()))}
    )
    parts = list(encode_batches(model, table.to_batches(max_chunksize=37), top=4))
    assert len(parts) == -(-len(x) // 37)
    ids = [i for p in parts for i in p[0]]
    streamed = np.concatenate([p[1].codes for p in parts])
    whole = model.encode(x, top=4)
    assert ids == table.column("item_id").to_pylist()
    np.testing.assert_array_equal(streamed, whole.codes)
    np.testing.assert_array_equal(np.concatenate([p[1].candidates for p in parts]), whole.candidates)


def test_torch_and_faiss_assign_alike_for_the_same_centroids():
    x, _ = planted(n_clusters=16, noise=0.4, dim=64, seed=2)
    centroids = FaissBackend().train(x, 32, KMeansParams(iters=10))
    torch_a = TorchBackend("cpu").assign(x, centroids, top=5)
    faiss_a = FaissBackend().assign(x, centroids, top=5)
    np.testing.assert_array_equal(torch_a.codes, faiss_a.codes)
    np.testing.assert_array_equal(torch_a.candidates, faiss_a.candidates)
    np.testing.assert_allclose(torch_a.distances, faiss_a.distances, rtol=1e-4, atol=1e-5)


def test_torch_lloyd_stops_once_converged_with_the_centroids_of_a_full_run():
    x, _ = planted(noise=0.3, seed=4)
    backend = TorchBackend("cpu")
    long = backend.train(x, 16, KMeansParams(iters=300, seed=2))
    longer = backend.train(x, 16, KMeansParams(iters=3000, seed=2))
    np.testing.assert_array_equal(long, longer)
    few = backend.train(x, 16, KMeansParams(iters=1, seed=2))
    assert not np.array_equal(few, long)  # one iteration has not converged yet

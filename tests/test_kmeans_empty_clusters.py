"""Empty clusters split the largest one (as faiss does), so RQ-KMeans does not collapse a level of residuals."""

import numpy as np
import pytest
import torch

from ingest.synthetic import Generator
from sid_index.kmeans import SPLIT_EPS, FaissBackend, KMeansParams, TorchBackend, split_largest
from sid_index.levels import level_metrics
from sid_index.rq import collapsed, train_rq_kmeans


def test_an_empty_cluster_takes_half_of_a_populous_one():
    centroids = torch.tensor([[9.0, 9.0], [1.0, 2.0], [5.0, 5.0]])
    split_largest(centroids, torch.tensor([0.0, 40.0, 1.0]), torch.Generator().manual_seed(0))
    # cluster 2 holds one point (weight 0), so cluster 1 is split: both copies, moved apart symmetrically
    up, down = torch.tensor([1 + SPLIT_EPS, 1 - SPLIT_EPS]), torch.tensor([1 - SPLIT_EPS, 1 + SPLIT_EPS])
    assert torch.allclose(centroids[0], torch.tensor([1.0, 2.0]) * up)
    assert torch.allclose(centroids[1], torch.tensor([1.0, 2.0]) * down)
    assert torch.equal(centroids[2], torch.tensor([5.0, 5.0]))


def test_several_empty_clusters_split_the_halves_further():
    centroids = torch.zeros(4, 3) + torch.tensor([1.0, 2.0, 3.0])
    centroids[0] = torch.tensor([4.0, 4.0, 4.0])
    split_largest(centroids, torch.tensor([64.0, 0.0, 0.0, 0.0]), torch.Generator().manual_seed(0))
    # every empty centroid became a perturbed copy of cluster 0 (or of one of its halves)
    assert torch.allclose(centroids, torch.tensor([4.0, 4.0, 4.0]).expand(4, 3), rtol=4 * SPLIT_EPS)
    assert len(torch.unique(centroids, dim=0)) >= 3


@pytest.mark.parametrize("seed", range(5))
def test_rows_already_reconstructed_do_not_seed_a_centroid_that_swallows_the_level(seed):
    """Residuals are nearly orthogonal: a seed at zero (an item alone in its cluster at an earlier level) is
    closer to almost every point than any other seed. With such rows among the seeds the level collapsed to
    a perplexity near 1 in four of these five seeds."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal((4000, 256)) * 0.03, np.zeros((200, 256))]).astype(np.float32)
    x = x[rng.permutation(len(x))]
    backend = TorchBackend("cpu")
    codes = backend.assign(x, backend.train(x, 32, KMeansParams(iters=20, seed=seed))).codes
    assert level_metrics(codes, 32)["perplexity"] > 16
    assert np.bincount(codes, minlength=32).max() < 0.2 * len(x)


def _levels(backend, x, sizes, seed):
    model = train_rq_kmeans(x, sizes, backend, KMeansParams(seed=seed))
    encoded = model.encode(x)
    return (
        [level_metrics(encoded.codes[:, i], s)["perplexity"] for i, s in enumerate(sizes)],
        float(encoded.errors[:, -1].mean()),
    )


@pytest.mark.slow
def test_torch_and_faiss_agree_on_raw_perplexity_and_error_where_the_last_level_used_to_collapse():
    """The issue's case: the `small` catalogue in item-id order, 3 x 128. The random refill gave level 3 a
    perplexity of 1.27 (96.5 % of items on one codeword) where faiss has 86. One seed's level 2 varies by a
    third under either backend, so the backends are compared on medians over eight seeds."""
    gen = Generator("small")
    x = gen.embeddings()[np.argsort(gen.item_ids.astype(str))]
    sizes = [128, 128, 128]
    runs = {
        b.name: [_levels(b, x, sizes, seed) for seed in range(0, 40, 10)] for b in (TorchBackend("cpu"), FaissBackend())
    }
    perplexity = {name: np.median([r[0] for r in rs], axis=0) for name, rs in runs.items()}
    error = {name: np.median([r[1] for r in rs]) for name, rs in runs.items()}
    assert all((np.asarray(r[0]) > perplexity["faiss-cpu"] / 4).all() for r in runs["torch-cpu"])
    assert perplexity["torch-cpu"] == pytest.approx(perplexity["faiss-cpu"], rel=0.10)
    assert error["torch-cpu"] == pytest.approx(error["faiss-cpu"], rel=0.10)


def test_a_level_that_collapses_anyway_is_retrained_with_another_seed():
    """On the demo catalogue, seed 4 leaves level 3 with one codeword for nearly every item under either
    backend (faiss too: a seed shorter than the rest swallows the residuals); the level is trained again."""
    gen = Generator("demo")
    x = gen.embeddings()[np.argsort(gen.item_ids.astype(str))]
    once = train_rq_kmeans(x, [64] * 3, TorchBackend("cpu"), KMeansParams(seed=4, collapse_retries=0))
    assert collapsed(once.encode(x).codes[:, 2], 64)
    model = train_rq_kmeans(x, [64] * 3, TorchBackend("cpu"), KMeansParams(seed=4))
    codes = model.encode(x).codes
    assert not any(collapsed(codes[:, level], 64) for level in range(3))
    assert model.timings["collapse_retries_level_3"] >= 1 and "collapse_retries_level_1" not in model.timings

"""RQ-VAE (FORGE): clusters at level 1, training converges, balanced codes, deterministic on CPU."""

import numpy as np

from sid_index.rqvae import RQVAEParams, preset, sinkhorn, train_rqvae
from tests.helpers import planted, purity

PARAMS = RQVAEParams(hidden=(64, 64), latent=16, epochs=15, batch_size=128, seed=0)


def test_rqvae_recovers_clusters_and_learns():
    x, labels = planted(dim=32, noise=0.1)
    model = train_rqvae(x, [8, 8, 8], PARAMS, device="cpu")
    encoded = model.encode(x)
    assert purity(encoded.codes[:, 0], labels) > 0.95
    assert model.history[-1] < model.history[0]
    assert encoded.errors[:, -1].mean() <= encoded.errors[:, 0].mean()
    assert model.decode(encoded.codes).shape == x.shape


def test_rqvae_is_deterministic_on_cpu():
    x, _ = planted(dim=32, noise=0.2, seed=1)
    a = train_rqvae(x, [8, 8], PARAMS, device="cpu").encode(x).codes
    b = train_rqvae(x, [8, 8], PARAMS, device="cpu").encode(x).codes
    np.testing.assert_array_equal(a, b)


def test_rqvae_is_deterministic_on_several_cpu_threads():
    """Batches big enough for torch to split the codebook gradient's accumulation across threads (the
    sidforge preset on 5,000 x 512): a gather whose backward accumulated racily gave other codes each run."""
    import torch

    x, _ = planted(n_clusters=40, per_cluster=125, dim=512, noise=0.5, seed=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a, b = (train_rqvae(x, [64, 64], preset("sidforge", epochs=2, seed=0), device="cpu") for _ in range(2))
    finally:
        torch.set_num_threads(threads)
    assert a.history == b.history
    np.testing.assert_array_equal(a.encode(x).codes, b.encode(x).codes)


def test_sinkhorn_balances_the_assignment():
    import torch

    rng = torch.Generator().manual_seed(0)
    distances = torch.rand(512, 8, generator=rng) * 0.3 + torch.linspace(0, 1, 8)  # code 0 nearest for most
    greedy = torch.bincount(distances.argmin(1), minlength=8)
    balanced = torch.bincount(sinkhorn(distances, 0.05, 10).argmax(1), minlength=8)
    assert greedy.max() > 300
    assert balanced.max() < 90 and balanced.min() > 40


def test_pairs_term_trains(tmp_path):
    x, _ = planted(dim=32, noise=0.2, seed=4)
    pairs = np.stack([np.arange(0, 100), np.arange(100, 200)], 1)
    model = train_rqvae(
        x,
        [8, 8],
        RQVAEParams(hidden=(64, 64), latent=16, epochs=3, batch_size=128, pair_weight=0.5),
        device="cpu",
        pairs=pairs,
    )
    assert np.isfinite(model.history).all()

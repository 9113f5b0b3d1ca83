"""RQ-VAE presets: FORGE's recipe (AdamW, warm-up then half-cosine per step, batch 2048) trains as FORGE's does."""

import math

import numpy as np
import pytest

from sid_index.build import BuildConfig, train
from sid_index.rqvae import preset, train_rqvae
from tests.helpers import planted, purity


def test_forge_preset_matches_forges_config_and_schedule():
    forge = preset("forge", epochs=150)
    assert (forge.optimizer, forge.lr, forge.weight_decay, forge.batch_size) == ("adamw", 0.002, 1e-4, 2048)

    # FORGE's utils/lr_sched.adjust_learning_rate with warmup_epochs 40, epochs 150, min_lr 1e-7
    def forge_lr(epoch):
        if epoch < 40:
            return 0.002 * epoch / 40
        return 1e-7 + (0.002 - 1e-7) * 0.5 * (1.0 + math.cos(math.pi * (epoch - 40) / (150 - 40)))

    for epoch in (0, 0.5, 13.25, 39.99, 40, 77.5, 149.9, 150):
        assert forge.lr_at(epoch) == pytest.approx(forge_lr(epoch), rel=1e-9, abs=1e-15)
    assert preset("sidforge", epochs=3).lr_at(2.5) == 1e-3


def test_an_unknown_preset_or_optimizer_is_refused():
    with pytest.raises(ValueError, match="unknown RQ-VAE preset 'tiger'"):
        preset("tiger")
    x, _ = planted(dim=16, per_cluster=20)
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        train_rqvae(x, [4], preset("sidforge", optimizer="sgd", epochs=1), device="cpu")


def test_a_forge_preset_build_recovers_clusters():
    x, labels = planted(n_clusters=8, per_cluster=300, dim=32, noise=0.1)
    config = BuildConfig(method="rq-vae", sizes=(16, 8, 8), device="cpu", rqvae_epochs=40, rqvae_preset="forge")
    model = train(x, config, len(x))
    encoded = model.encode(x)
    assert purity(encoded.codes[:, 0], labels) > 0.95
    assert model.history[-1] < model.history[0]
    assert np.isfinite(encoded.errors).all()

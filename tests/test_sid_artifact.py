"""The portable SID artefact: safetensors with a JSON header, loadable without sidforge."""

import json

import numpy as np
from safetensors import safe_open

from sid_index.artifact import load_artifact, save_artifact
from sid_index.kmeans import KMeansParams, TorchBackend
from sid_index.rq import train_rq_kmeans
from sid_index.rqvae import RQVAEParams, train_rqvae
from tests.helpers import planted


def test_rq_kmeans_round_trip_and_plain_safetensors(tmp_path):
    x, _ = planted(noise=0.3)
    model = train_rq_kmeans(x, [8, 8, 4], TorchBackend("cpu"), KMeansParams(iters=5))
    path = save_artifact(model, tmp_path / "m.safetensors", {"build_id": "b1"})
    with safe_open(str(path), framework="numpy") as fh:
        head = json.loads(fh.metadata()["sidforge"])
        books = [fh.get_tensor(f"codebook.{i}") for i in range(3)]
    assert head["sizes"] == [8, 8, 4] and head["offsets"] == [0, 8, 16] and head["build_id"] == "b1"
    np.testing.assert_array_equal(books[2], model.codebooks[2])
    again = load_artifact(path)
    np.testing.assert_array_equal(again.encode(x).codes, model.encode(x).codes)


def test_rqvae_round_trip(tmp_path):
    x, _ = planted(noise=0.2)
    model = train_rqvae(x, [8, 8], RQVAEParams(hidden=(32,), latent=8, epochs=2, batch_size=128), device="cpu")
    again = load_artifact(save_artifact(model, tmp_path / "v.safetensors"))
    np.testing.assert_array_equal(again.encode(x).codes, model.encode(x).codes)
    np.testing.assert_allclose(again.decode(model.encode(x).codes), model.decode(model.encode(x).codes), atol=1e-6)

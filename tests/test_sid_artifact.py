"""The portable SID artefact: safetensors with a JSON header, loadable without sidforge."""

import json

import numpy as np
import pytest
from safetensors import safe_open

from sid_index.artifact import artifact_bytes, load_artifact
from sid_index.kmeans import KMeansParams, TorchBackend
from sid_index.rq import train_rq_kmeans
from sid_index.rqvae import RQVAEParams, train_rqvae
from tests.helpers import planted


def test_rq_kmeans_round_trip_and_plain_safetensors(tmp_path):
    x, _ = planted(noise=0.3)
    model = train_rq_kmeans(x, [8, 8, 4], TorchBackend("cpu"), KMeansParams(iters=5))
    path = tmp_path / "m.safetensors"
    path.write_bytes(artifact_bytes(model, {"build_id": "b1"}))
    with safe_open(str(path), framework="numpy") as fh:
        head = json.loads(fh.metadata()["sidforge"])
        books = [fh.get_tensor(f"codebook.{i}") for i in range(3)]
    assert head["sizes"] == [8, 8, 4] and head["offsets"] == [0, 8, 16] and head["build_id"] == "b1"
    np.testing.assert_array_equal(books[2], model.codebooks[2])
    again = load_artifact(path.read_bytes())
    np.testing.assert_array_equal(again.encode(x).codes, model.encode(x).codes)


def test_rqvae_round_trip():
    x, _ = planted(noise=0.2)
    model = train_rqvae(x, [8, 8], RQVAEParams(hidden=(32,), latent=8, epochs=2, batch_size=128), device="cpu")
    again = load_artifact(artifact_bytes(model))
    np.testing.assert_array_equal(again.encode(x).codes, model.encode(x).codes)
    np.testing.assert_allclose(again.decode(model.encode(x).codes), model.decode(model.encode(x).codes), atol=1e-6)


def test_other_bytes_are_refused_with_their_name():
    with pytest.raises(ValueError, match=r"s3://b/m.safetensors is not a safetensors file"):
        load_artifact(b"not a safetensors file", name="s3://b/m.safetensors")

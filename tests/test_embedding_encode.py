"""Encoding items: deterministic on CPU, unit norm, every fusion mode, text-only fallback for bad images."""

import numpy as np
import pytest
import torch

from embeddings.align import AlignConfig, train_projection
from embeddings.encode import EncodeStats, _halving, encode_items
from embeddings.model import EncoderSpec, load_encoder
from ingest.synthetic import _png
from tests.helpers import TINY_CONFIG

IDS = ["a", "b", "c", "d", "e"]
TITLES = ["red mug", "blue lamp", "green scarf", None, None]
CATS = ["home/kitchen", "home/light", "fashion", "fashion", None]


@pytest.fixture(scope="module")
def encoder(tiny_checkpoint):
    return load_encoder(EncoderSpec("sidforge-tiny", str(tiny_checkpoint), device="cpu", config=str(TINY_CONFIG)))


def _images():
    return [_png((200, 20, 20), 1), b"\x89PNG corrupt", None, _png((20, 200, 20), 2), None]


def test_same_weights_same_vectors_and_unit_norm(tiny_checkpoint, encoder):
    again = load_encoder(EncoderSpec("sidforge-tiny", str(tiny_checkpoint), device="cpu", config=str(TINY_CONFIG)))
    a = encode_items(encoder, IDS, TITLES, CATS, _images(), [None] * 5, num_workers=0)
    b = encode_items(again, IDS, TITLES, CATS, _images(), [None] * 5, num_workers=2, batch_size=2)
    assert a.item_ids == b.item_ids == ["a", "b", "c", "d"]
    np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-5)
    assert a.vectors.dtype == np.float32


def test_bad_images_fall_back_to_text_and_are_quarantined(encoder):
    result = encode_items(encoder, IDS, TITLES, CATS, _images(), [None] * 5, num_workers=0)
    assert result.modalities.tolist() == ["image+text", "text", "text", "image+text"]
    reasons = dict(result.rejects)
    assert reasons["b"].startswith("text-only embedding: image unreadable")
    assert reasons["c"] == "text-only embedding: item has no image"
    assert reasons["e"] == "item has neither a readable image nor a title"
    s = result.stats
    assert (s.items, s.encoded, s.text_only, s.quarantined, s.images) == (5, 4, 2, 1, 2)


@pytest.mark.parametrize(("fusion", "dim"), [("image", 32), ("text", 32), ("mean", 32), ("concat", 64)])
def test_fusion_modes(encoder, fusion, dim):
    result = encode_items(
        encoder, IDS[:4], TITLES[:4], CATS[:4], _images()[:4], [None] * 4, fusion=fusion, num_workers=0
    )
    assert result.vectors.shape == (4, dim)
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    if fusion == "text":
        assert set(result.modalities) == {"text"} and not result.rejects
    if fusion == "image":
        assert result.modalities.tolist() == ["image", "text", "text", "image"]


def test_projection_fusion_applies_the_learned_projection(encoder):
    concat = encode_items(encoder, IDS[:4], TITLES[:4], CATS[:4], _images()[:4], [None] * 4, num_workers=0)
    projection = train_projection(
        concat.vectors,
        np.array([0, 1]),
        np.array([3, 2]),
        config=AlignConfig(dim_out=16, epochs=2, batch_size=4, device="cpu"),
    )
    projected = encode_items(
        encoder,
        IDS[:4],
        TITLES[:4],
        CATS[:4],
        _images()[:4],
        [None] * 4,
        fusion="projection",
        projection=projection,
        num_workers=0,
    )
    assert projected.vectors.shape == (4, 16)
    expected = concat.vectors @ projection.weight.detach().numpy().T
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(projected.vectors, expected, atol=1e-5)
    with pytest.raises(ValueError, match="needs a trained projection"):
        encode_items(encoder, IDS[:1], TITLES[:1], CATS[:1], _images()[:1], [None], fusion="projection", num_workers=0)


def test_out_of_memory_halves_the_batch_and_goes_on():
    calls = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        if len(x) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (test double for a too-large batch)")
        return x * 2

    stats = EncodeStats(batch_size=16)
    out = _halving(forward, torch.arange(10.0), stats)
    assert torch.equal(out, torch.arange(10.0) * 2)
    assert (stats.oom_halvings, stats.batch_size) == (3, 2)
    assert calls[:4] == [10, 8, 4, 2]

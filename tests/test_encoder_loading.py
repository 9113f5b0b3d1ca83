"""OpenCLIP weights: a checkpoint file loads through the real path; missing weights are clear errors."""

import pytest
import torch

from embeddings.model import EncoderSpec, WeightsError, load_encoder, model_id
from tests.helpers import TINY_CONFIG


def _spec(weights, **kw):
    return EncoderSpec("sidforge-tiny", weights, device="cpu", config=str(TINY_CONFIG), **kw)


def test_checkpoint_file_round_trips_the_weights(tiny_checkpoint):
    encoder = load_encoder(_spec(str(tiny_checkpoint)))
    saved = torch.load(tiny_checkpoint, weights_only=True)
    loaded = encoder.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert encoder.weights_id.startswith("file-sidforge-tiny-")
    assert model_id(encoder, "concat") == f"sidforge-tiny:{encoder.weights_id}:concat"
    assert encoder.embed_dim == 32 and encoder.dtype == torch.float32


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(WeightsError, match=r"checkpoint file .*nope\.pt does not exist"):
        load_encoder(_spec(str(tmp_path / "nope.pt")))


def test_unreadable_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"cannot load weights .*broken\.pt"):
        load_encoder(_spec(str(bad)))


def test_no_weights_and_random_weights_need_an_explicit_request():
    with pytest.raises(WeightsError, match="no weights given"):
        load_encoder(_spec(None))
    with pytest.raises(WeightsError, match="allow_random"):
        load_encoder(_spec("random"))
    encoder = load_encoder(_spec("random", allow_random=True, seed=3))
    assert "random" in model_id(encoder, "mean")


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(WeightsError, match="is not a pretrained tag of ViT-B-32"):
        load_encoder(EncoderSpec("ViT-B-32", "no-such-tag", device="cpu"))

"""Image preprocessing split between DataLoader workers (8-bit pixels) and the batch step: same pixels as the
model's own preprocessing, for OpenCLIP's Compose and for any other callable."""

import io

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from embeddings.data import ItemImages, collate, split_preprocess
from ingest.synthetic import _png
from tests.helpers import TINY_CONFIG


def _photo(seed: int, size: tuple[int, int]) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.mark.parametrize("model", ["ViT-B-32", "sidforge-tiny"])
def test_split_preprocessing_gives_the_models_own_pixels_bit_for_bit(model):
    if model == "sidforge-tiny":
        open_clip.add_model_config(str(TINY_CONFIG))
    preprocess = open_clip.image_transform(open_clip.get_model_config(model)["vision_cfg"]["image_size"], False)
    per_image, per_batch = split_preprocess(preprocess)
    photos = [_photo(0, (256, 256)), _photo(1, (300, 180)), _photo(2, (40, 90))]
    small = torch.stack([per_image(p) for p in photos])
    assert small.dtype == torch.uint8
    expected = torch.stack([preprocess(p) for p in photos])
    assert torch.equal(per_batch(small), expected)


def test_preprocessing_that_does_not_end_in_to_tensor_and_normalize_runs_whole_in_the_workers():
    def custom(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float64)).permute(2, 0, 1) / 7

    per_image, per_batch = split_preprocess(custom)
    assert per_image is custom
    batch = torch.stack([per_image(_photo(3, (20, 20)))])
    assert per_batch(batch).dtype == torch.float32
    assert torch.allclose(per_batch(batch), batch.float())


def test_workers_hand_over_uint8_batches_and_still_report_unreadable_images():
    preprocess = open_clip.image_transform(32, False)
    per_image, _ = split_preprocess(preprocess)
    data = ItemImages([_png((200, 20, 20), 1), b"not an image", None], [None, None, "file:///x.png"], per_image)
    index, tensor, failed = collate([data[i] for i in range(3)])
    assert index == [0]
    assert tensor is not None and tensor.dtype == torch.uint8 and tuple(tensor.shape) == (1, 3, 32, 32)
    assert [i for i, _ in failed] == [1, 2]
    assert failed[0][1].startswith("image unreadable") and "not stored in the lake" in failed[1][1]

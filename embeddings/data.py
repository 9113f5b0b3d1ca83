"""Item images decoded and preprocessed in DataLoader workers; unreadable images reported, not fatal.

Workers hand over 8-bit pixels (a quarter of float32's bytes to stack, share and pin); the float conversion
and normalisation, when the model's preprocessing ends with them, run on the batch on the encoder's device
(see `split_preprocess`), with the same float32 arithmetic as torchvision's, so the pixels are identical.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset


class ItemImages(Dataset):
    """Images of items from the bytes stored in the lake, preprocessed to tensors.

    A URI without stored bytes is never opened here (ingest reads local images inside the allowed folders
    and fetches remote ones only when asked), so encoding cannot be pointed at arbitrary files.
    Each element is (index, tensor or None, reason or None).
    """

    def __init__(self, images: Sequence[bytes | None], uris: Sequence[str | None], preprocess: Callable):
        self.images, self.uris, self.preprocess = images, uris, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        image = self.images[i]
        if image is None:
            return (
                i,
                None,
                (
                    f"image {self.uris[i]} is not stored in the lake (it was missing or not fetched at ingest)"
                    if self.uris[i]
                    else "item has no image"
                ),
            )
        try:
            with Image.open(io.BytesIO(image)) as img:
                return i, self.preprocess(img.convert("RGB")), None
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            detail = "not a decodable image" if isinstance(exc, UnidentifiedImageError) else str(exc)
            return i, None, f"image unreadable ({type(exc).__name__}: {detail})"[:300]


def split_preprocess(preprocess: Callable) -> tuple[Callable, Callable[[torch.Tensor], torch.Tensor]]:
    """(per image in the workers, per batch on the device): a Compose ending in ToTensor and Normalize is split
    before ToTensor, whose conversion moves to the batch (uint8 pixels in, normalised float32 out); any
    other preprocessing runs whole in the workers and the batch step only makes it float32."""
    from torchvision import transforms  # here: importing it costs every Dagster process seconds at start
    from torchvision.transforms import functional as tf

    steps = list(getattr(preprocess, "transforms", []))
    cut = next((i for i, t in enumerate(steps) if isinstance(t, transforms.ToTensor)), None)
    tail = steps[cut + 1 :] if cut is not None else []
    if cut is None or not all(isinstance(t, transforms.Normalize) for t in tail):
        return preprocess, lambda batch: batch.float()
    head = transforms.Compose([*steps[:cut], tf.pil_to_tensor])

    def finish(batch: torch.Tensor) -> torch.Tensor:
        out = batch.float().div(255)
        for step in tail:
            out = step(out)
        return out

    return head, finish


def collate(batch: list[tuple[int, torch.Tensor | None, str | None]]):
    """Stack the decoded images of a batch; keep indexes and reasons of the failed ones."""
    ok = [(i, t) for i, t, _ in batch if t is not None]
    failed = [(i, r) for i, t, r in batch if t is None]
    tensor = torch.stack([t for _, t in ok]) if ok else None
    return [i for i, _ in ok], tensor, failed


def image_loader(dataset: ItemImages, batch_size: int, num_workers: int) -> DataLoader:
    """Batches of decoded images, decoded in parallel by `num_workers` processes, in order."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
    )

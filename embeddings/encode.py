"""Encode items (titles with their category path, and images) with OpenCLIP, then fuse.

Images are decoded and preprocessed in DataLoader workers; a CUDA out-of-memory error halves the batch
and goes on. Items whose image is missing or unreadable get a text-only embedding and a quarantine
record; items with neither image nor title get only the quarantine record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from embeddings.data import ItemImages, image_loader, split_preprocess
from embeddings.fusion import fuse
from embeddings.model import Encoder

Progress = Callable[[int], None]


@dataclass
class EncodeStats:
    """What an encoding run did, for asset metadata and benchmarks."""

    items: int = 0
    encoded: int = 0
    text_only: int = 0
    quarantined: int = 0
    images: int = 0
    oom_halvings: int = 0
    batch_size: int = 0
    seconds: float = 0.0
    image_seconds: float = 0.0
    device: str = "cpu"

    @property
    def images_per_second(self) -> float:
        """Images decoded, preprocessed and encoded per second of the image pass."""
        return self.images / self.image_seconds if self.image_seconds else 0.0

    def add(self, other: EncodeStats) -> None:
        """Add another run's counts and times (a chunk of the same job); its batch size is the latest."""
        for name in ("items", "encoded", "text_only", "quarantined", "images", "oom_halvings"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        self.image_seconds += other.image_seconds
        self.batch_size = other.batch_size


@dataclass
class EncodeResult:
    """Fused vectors for the encoded items, plus quarantine records (item id, reason)."""

    item_ids: list[str]
    vectors: np.ndarray
    modalities: np.ndarray
    rejects: list[tuple[str, str]] = field(default_factory=list)
    stats: EncodeStats = field(default_factory=EncodeStats)


def _halving(forward: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, stats: EncodeStats) -> torch.Tensor:
    """Run `forward` over `batch` in chunks of stats.batch_size, halving it on CUDA out-of-memory."""
    outputs, start = [], 0
    while start < len(batch):
        stop = min(len(batch), start + stats.batch_size)
        try:
            outputs.append(forward(batch[start:stop]))
            start = stop
        except torch.OutOfMemoryError:
            if stats.batch_size == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            stats.batch_size = max(1, stats.batch_size // 2)
            stats.oom_halvings += 1
    return torch.cat(outputs)


def texts_for(titles: Sequence[str | None], categories: Sequence[str | None]) -> list[str]:
    """What the text tower reads: the title followed by the category path."""
    return [" | ".join(p for p in (t, c) if p) for t, c in zip(titles, categories, strict=True)]


def encode_texts(encoder: Encoder, texts: Sequence[str], stats: EncodeStats) -> np.ndarray:
    """Text embeddings (float32, not yet normalised) in batches."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), stats.batch_size):
            tokens = encoder.tokenizer(list(texts[start : start + stats.batch_size])).to(encoder.device)
            out.append(_halving(encoder.model.encode_text, tokens, stats).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, encoder.embed_dim), np.float32)


def encode_images(
    encoder: Encoder,
    images: Sequence[bytes | None],
    uris: Sequence[str | None],
    stats: EncodeStats,
    num_workers: int,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Image embeddings, a mask of the items that have one, and the reasons of those that failed."""
    vectors = np.zeros((len(images), encoder.embed_dim), np.float32)
    has = np.zeros(len(images), bool)
    failed: dict[int, str] = {}
    started = time.perf_counter()
    per_image, per_batch = split_preprocess(encoder.preprocess)
    loader = image_loader(ItemImages(images, uris, per_image), stats.batch_size, num_workers)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return encoder.model.encode_image(per_batch(x.to(encoder.device, non_blocking=True)).to(encoder.dtype))

    with torch.inference_mode():
        for index, tensor, bad in loader:
            if tensor is not None:
                vectors[index] = _halving(forward, tensor, stats).float().cpu().numpy()
                has[index] = True
            failed.update(dict(bad))
            if progress:
                progress(len(index) + len(bad))
    stats.images = int(has.sum())
    stats.image_seconds = time.perf_counter() - started
    return vectors, has, failed


def encode_items(
    encoder: Encoder,
    item_ids: Sequence[str],
    titles: Sequence[str | None],
    categories: Sequence[str | None],
    images: Sequence[bytes | None],
    uris: Sequence[str | None],
    *,
    fusion: str = "concat",
    batch_size: int = 256,
    num_workers: int = 2,
    projection: torch.nn.Module | None = None,
    progress: Progress | None = None,
) -> EncodeResult:
    """Encode items and fuse their image and text embeddings (see the module docstring for failures)."""
    started = time.perf_counter()
    stats = EncodeStats(items=len(item_ids), batch_size=batch_size, device=str(encoder.device))
    texts = texts_for(titles, categories)
    has_text = np.array([bool(t.strip()) for t in texts], dtype=bool)
    text_vectors = encode_texts(encoder, texts, stats)
    if fusion == "text":
        image_vectors, has_image = np.zeros_like(text_vectors), np.zeros(len(texts), bool)
        failed: dict[int, str] = {}
    else:
        image_vectors, has_image, failed = encode_images(encoder, images, uris, stats, num_workers, progress)
    usable = has_image | has_text
    unreadable = {i: r for i, r in failed.items() if r.startswith("image unreadable")}
    rejects = [
        (
            item_ids[i],
            "item has neither a readable image nor a title" + (f" ({unreadable[i]})" if i in unreadable else ""),
        )
        for i in np.flatnonzero(~usable).tolist()
    ]
    if fusion != "text":
        rejects += [
            (item_ids[i], f"text-only embedding: {failed.get(i, 'item has no image')}")
            for i in np.flatnonzero(usable & ~has_image).tolist()
        ]
    vectors, modalities = fuse(image_vectors[usable], text_vectors[usable], has_image[usable], fusion, projection)
    stats.encoded = int(usable.sum())
    stats.text_only = int((usable & ~has_image).sum()) if fusion != "text" else 0
    stats.quarantined = int((~usable).sum())
    stats.seconds = time.perf_counter() - started
    ids = [item_ids[i] for i in np.flatnonzero(usable).tolist()]
    return EncodeResult(ids, vectors, modalities, rejects, stats)

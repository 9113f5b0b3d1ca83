"""Fusion of image and text embeddings into one L2-normalised float32 vector per item."""

from __future__ import annotations

import numpy as np
import torch

FUSIONS = ("image", "text", "concat", "mean", "projection")


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def fuse(
    image: np.ndarray, text: np.ndarray, has_image: np.ndarray, mode: str, projection: torch.nn.Module | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fused vectors and the modalities each row was built from ("image+text", "image" or "text").

    Rows without an image use their text embedding alone (for `concat` the image half is zero).
    """
    if mode not in FUSIONS:
        raise ValueError(f"unknown fusion {mode!r}; choose one of {', '.join(FUSIONS)}")
    image, text = l2_normalise(image), l2_normalise(text)
    image = np.where(has_image[:, None], image, 0.0).astype(np.float32)
    if mode == "image":
        out = np.where(has_image[:, None], image, text)
        modalities = np.where(has_image, "image", "text")
        return l2_normalise(out), modalities
    modalities = np.where(has_image, "image+text", "text")
    if mode == "text":
        return text, np.full(len(text), "text")
    if mode == "mean":
        return l2_normalise(np.where(has_image[:, None], image + text, text)), modalities
    joined = np.concatenate([image, text], axis=1)
    if mode == "concat":
        return l2_normalise(joined), modalities
    if projection is None:
        raise ValueError("fusion 'projection' needs a trained projection (see embeddings.align)")
    with torch.no_grad():
        weight = next(projection.parameters())
        projected = projection(torch.from_numpy(joined).to(weight.device, weight.dtype)).float().cpu().numpy()
    return l2_normalise(projected), modalities

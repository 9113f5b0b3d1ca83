"""Collaborative alignment (FORGE Eq. 2): a projection trained with InfoNCE on co-occurring item pairs.

The features stay frozen; only a linear projection (initialised at the identity) is learned, so that
items bought or viewed together move closer while the content geometry is kept as the starting point.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from embeddings.fusion import l2_normalise
from embeddings.model import resolve_device


@dataclass(frozen=True)
class AlignConfig:
    """Training settings for the alignment projection."""

    dim_out: int | None = None
    epochs: int = 30
    batch_size: int = 512
    temperature: float = 0.05
    lr: float = 2e-3
    seed: int = 0
    device: str = "auto"


def train_projection(
    features: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    weights: np.ndarray | None = None,
    config: AlignConfig = AlignConfig(),
    progress: Callable[[str, int, int], None] | None = None,
) -> torch.nn.Linear:
    """Learn W so that normalise(W f_left) matches normalise(W f_right) against in-batch negatives;
    `progress(step, epochs done, epochs)` after each epoch."""
    if len(left) == 0:
        raise ValueError("collaborative alignment needs item pairs; item_pairs is empty")
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    dim = features.shape[1]
    projection = torch.nn.Linear(dim, config.dim_out or dim, bias=False)
    with torch.no_grad():
        projection.weight.copy_(torch.eye(config.dim_out or dim, dim))
    projection.to(device)
    x = torch.from_numpy(l2_normalise(features)).to(device)
    a, b = torch.from_numpy(left.astype(np.int64)), torch.from_numpy(right.astype(np.int64))
    p = torch.from_numpy(np.asarray(weights if weights is not None else np.ones(len(left)), dtype=np.float64))
    optimiser = torch.optim.Adam(projection.parameters(), lr=config.lr)
    steps = max(1, len(left) // config.batch_size)
    for epoch in range(config.epochs):
        for _ in range(steps):
            pick = torch.multinomial(p, config.batch_size, replacement=True, generator=generator)
            za = F.normalize(projection(x[a[pick].to(device)]), dim=1)
            zb = F.normalize(projection(x[b[pick].to(device)]), dim=1)
            logits = za @ zb.T / config.temperature
            target = torch.arange(len(pick), device=device)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if progress:
            progress("alignment: training epochs", epoch + 1, config.epochs)
    return projection.cpu().eval()


def project(projection: torch.nn.Module, features: np.ndarray) -> np.ndarray:
    """Apply a trained projection and L2-normalise."""
    with torch.no_grad():
        return l2_normalise(projection(torch.from_numpy(l2_normalise(features))).numpy())


def partner_in_neighbours(
    vectors: np.ndarray, left: np.ndarray, right: np.ndarray, k: int = 10, chunk: int = 4096
) -> float:
    """Share of pairs whose partner is among the item's k nearest neighbours (inner product, self excluded)."""
    x = torch.from_numpy(l2_normalise(vectors))
    hits = 0
    for start in range(0, len(left), chunk):
        rows = torch.from_numpy(left[start : start + chunk].astype(np.int64))
        sims = x[rows] @ x.T
        sims[torch.arange(len(rows)), rows] = -torch.inf
        top = sims.topk(min(k, len(x) - 1), dim=1).indices
        hits += int((top == torch.from_numpy(right[start : start + chunk].astype(np.int64))[:, None]).any(1).sum())
    return hits / max(1, len(left))


def projection_bytes(projection: torch.nn.Linear) -> bytes:
    """The projection's weights as the bytes of a torch file (loadable with weights_only=True)."""
    buffer = io.BytesIO()
    torch.save({"weight": projection.weight.detach().cpu()}, buffer)
    return buffer.getvalue()


def load_projection(data: bytes, name: str = "projection") -> torch.nn.Linear:
    """A projection from the bytes of projection_bytes; a ValueError naming `name` when they are not one."""
    try:
        weight = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["weight"]
    except (RuntimeError, KeyError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{name} is not a projection saved by sidforge: {exc}") from exc
    projection = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        projection.weight.copy_(weight)
    return projection.eval()

"""RQ-VAE as FORGE builds it: an MLP autoencoder (512→256→256→64 and back) with residual codebooks in the
latent space, Sinkhorn-balanced code assignment while training, nearest code at inference,
reconstruction + commitment loss, optional InfoNCE on item pairs, k-means initialisation of the
codebooks and restart of dead codes.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sid_index.kmeans import KMeansParams, TorchBackend
from sid_index.rq import CANDIDATES, Encoded, train_rq_kmeans


@dataclass(frozen=True)
class RQVAEParams:
    """Architecture and training settings."""

    hidden: tuple[int, ...] = (256, 256)
    latent: int = 64
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 1e-3
    beta: float = 0.25
    sinkhorn_eps: float = 0.05
    sinkhorn_iters: int = 3
    pair_weight: float = 0.0
    temperature: float = 0.1
    seed: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_share: float = 0.0
    min_lr: float = 0.0

    def lr_at(self, epoch: float) -> float:
        """Learning rate at a fractional epoch: constant, or linear warm-up then half-cosine to `min_lr`."""
        if self.schedule == "constant":
            return self.lr
        warmup = self.warmup_share * self.epochs
        if epoch < warmup:
            return self.lr * epoch / warmup
        done = (epoch - warmup) / max(self.epochs - warmup, 1e-9)
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * done))


# FORGE's trainer (SID_generation/configs/rqvae_i2v.yml, utils/lr_sched.py): AdamW, lr 0.002, weight decay 1e-4,
# batch 2048, 40 of 150 epochs of linear warm-up then half-cosine to 1e-7, set per step; Sinkhorn-balanced
# assignment while training (as every preset here).
Preset = Literal["sidforge", "forge"]
PRESETS: dict[str, RQVAEParams] = {
    "sidforge": RQVAEParams(),
    "forge": RQVAEParams(
        batch_size=2048,
        lr=0.002,
        optimizer="adamw",
        weight_decay=1e-4,
        schedule="cosine",
        warmup_share=40 / 150,
        min_lr=1e-7,
    ),
}


def preset(name: Preset, **overrides: Any) -> RQVAEParams:
    """A named RQ-VAE configuration (`sidforge` or `forge`) with some fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"unknown RQ-VAE preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def sinkhorn(distances: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """Balanced soft assignment (rows: items, columns: codes) from squared distances, Sinkhorn-Knopp: each
    iteration gives every code 1/codes of the mass, then every item 1/items; returned scaled by items."""
    q = distances * (-1.0 / (eps * (float(distances.std()) + 1e-8)))  # scores / eps, in one pass
    q -= q.max()
    q = q.exp_()
    q /= q.sum()
    items, codes = q.shape
    for _ in range(iters):
        q /= q.sum(0, keepdim=True) * codes
        q /= q.sum(1, keepdim=True) * items
    return q.mul_(items)


class RQVAENet(nn.Module):
    """Encoder, residual codebooks and decoder."""

    def __init__(self, dim: int, sizes: Sequence[int], params: RQVAEParams):
        super().__init__()
        self.input_dim = dim
        self.encoder = _mlp([dim, *params.hidden, params.latent])
        self.decoder = _mlp([params.latent, *reversed(params.hidden), dim])
        self.codebooks = nn.ParameterList([nn.Parameter(torch.randn(k, params.latent) * 0.1) for k in sizes])

    def quantize(
        self, z: torch.Tensor, balanced: bool = False, eps: float = 0.05, iters: int = 3
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantised latent, codes (n, L), codebook loss and commitment loss."""
        residual, quantised = z, torch.zeros_like(z)
        codes, book_loss, commit_loss = [], z.new_zeros(()), z.new_zeros(())
        for book in self.codebooks:
            with torch.no_grad():  # assignment only: no graph through the distances
                d = torch.addmm((book * book).sum(1), residual, book.T, alpha=-2.0)
                d += (residual * residual).sum(1, keepdim=True)
                code = sinkhorn(d, eps, iters).argmax(1) if balanced else d.argmin(1)
            q = F.embedding(code, book)  # a gather whose backward sums into the codebook in a fixed order on CPU
            book_loss = book_loss + F.mse_loss(q, residual.detach())
            commit_loss = commit_loss + F.mse_loss(residual, q.detach())
            quantised = quantised + q
            residual = residual - q.detach()
            codes.append(code)
        return quantised, torch.stack(codes, 1), book_loss, commit_loss


@dataclass
class RQVAE:
    """A trained RQ-VAE with the SidModel interface."""

    net: RQVAENet
    params: RQVAEParams
    device: torch.device
    method: str = "rq-vae"
    timings: dict[str, float] = field(default_factory=dict)
    history: list[float] = field(default_factory=list)

    @property
    def codebooks(self) -> list[np.ndarray]:
        """Latent codebooks per level."""
        return [b.detach().float().cpu().numpy() for b in self.net.codebooks]

    @property
    def sizes(self) -> list[int]:
        """Codebook size of each level."""
        return [len(b) for b in self.net.codebooks]

    @torch.inference_mode()
    def encode(self, x: np.ndarray, top: int = CANDIDATES, chunk: int = 16_384) -> Encoded:
        """Nearest-code assignment in the latent space; errors are measured on the decoded embedding."""
        parts = []
        for start in range(0, len(x), chunk):
            xb = torch.tensor(x[start : start + chunk], dtype=torch.float32, device=self.device)
            residual = self.net.encoder(xb)
            partial = torch.zeros_like(residual)
            codes, errors = [], []
            cands = cand_d = None
            for level, book in enumerate(self.net.codebooks):
                d = torch.cdist(residual, book).pow(2)
                if level == len(self.net.codebooks) - 1:
                    cand_d, cands = torch.topk(d, min(top, len(book)), dim=1, largest=False)
                code = d.argmin(1)
                partial = partial + book[code]
                residual = residual - book[code]
                codes.append(code)
                errors.append((self.net.decoder(partial) - xb).pow(2).sum(1))
            assert cands is not None and cand_d is not None
            parts.append(
                Encoded(
                    torch.stack(codes, 1).int().cpu().numpy(),
                    cands.int().cpu().numpy(),
                    cand_d.float().cpu().numpy(),
                    torch.stack(errors, 1).float().cpu().numpy(),
                )
            )
        return Encoded.concat(parts)

    @torch.inference_mode()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstructed embeddings: the decoder applied to the sum of the codewords."""
        idx = torch.from_numpy(codes.astype(np.int64)).to(self.device)
        latent = sum(book[idx[:, level]] for level, book in enumerate(self.net.codebooks))
        return self.net.decoder(latent).float().cpu().numpy()


def _info_nce(za: torch.Tensor, zb: torch.Tensor, temperature: float) -> torch.Tensor:
    za, zb = F.normalize(za, dim=1), F.normalize(zb, dim=1)
    logits = za @ zb.T / temperature
    target = torch.arange(len(za), device=za.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def train_rqvae(
    x: np.ndarray,
    sizes: Sequence[int],
    params: RQVAEParams = RQVAEParams(),
    device: str = "auto",
    pairs: np.ndarray | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RQVAE:
    """Train on `x` (n, d); `pairs` (m, 2) row indices of co-occurring items add the InfoNCE term; `progress(step,
    epochs done, epochs)` after each epoch."""
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    torch.manual_seed(params.seed)
    gen = torch.Generator().manual_seed(params.seed)
    started = time.perf_counter()
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    net = RQVAENet(data.shape[1], sizes, params).to(dev)
    with torch.no_grad():  # k-means initialisation of the codebooks on the initial latents
        latents = net.encoder(data[torch.randperm(len(data), generator=gen)[:50_000]].to(dev)).cpu().numpy()
        init = train_rq_kmeans(latents, sizes, TorchBackend(str(dev)), KMeansParams(iters=10, seed=params.seed))
        for book, centroids in zip(net.codebooks, init.codebooks, strict=True):
            book.copy_(torch.from_numpy(centroids))
    if params.optimizer not in ("adam", "adamw"):
        raise ValueError(f"unknown optimizer {params.optimizer!r}; choose adam or adamw")
    optimiser = (torch.optim.AdamW if params.optimizer == "adamw" else torch.optim.Adam)(
        net.parameters(), lr=params.lr, weight_decay=params.weight_decay
    )
    steps = -(-len(data) // params.batch_size)
    pair_t = torch.from_numpy(pairs.astype(np.int64)) if pairs is not None and len(pairs) else None
    history: list[float] = []
    for epoch in range(params.epochs):
        usage = [torch.zeros(k, dtype=torch.long) for k in sizes]
        order = torch.randperm(len(data), generator=gen)
        epoch_loss = 0.0
        for step, start in enumerate(range(0, len(data), params.batch_size)):
            for group in optimiser.param_groups:
                group["lr"] = params.lr_at(epoch + step / steps)
            xb = data[order[start : start + params.batch_size]].to(dev)
            z = net.encoder(xb)
            zq, codes, book_loss, commit_loss = net.quantize(z, True, params.sinkhorn_eps, params.sinkhorn_iters)
            x_hat = net.decoder(z + (zq - z).detach())
            loss = F.mse_loss(x_hat, xb) + book_loss + params.beta * commit_loss
            if pair_t is not None and params.pair_weight > 0:
                pick = pair_t[torch.randint(len(pair_t), (min(params.batch_size, len(pair_t)),), generator=gen)]
                loss = loss + params.pair_weight * _info_nce(
                    net.encoder(data[pick[:, 0]].to(dev)), net.encoder(data[pick[:, 1]].to(dev)), params.temperature
                )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            epoch_loss += float(loss.detach()) * len(xb)
            for level, code in enumerate(codes.T.cpu()):
                usage[level] += torch.bincount(code, minlength=sizes[level])
        history.append(epoch_loss / len(data))
        _restart_dead_codes(net, data, usage, gen, dev)
        if progress:
            progress("RQ-VAE: training epochs", epoch + 1, params.epochs)
    model = RQVAE(net.eval(), params, dev, history=history)
    model.timings["train_s"] = time.perf_counter() - started
    return model


@torch.no_grad()
def _restart_dead_codes(
    net: RQVAENet, data: torch.Tensor, usage: list[torch.Tensor], gen: torch.Generator, dev: torch.device
) -> None:
    """Codes no item used during the epoch restart at residuals of random items."""
    sample = data[torch.randperm(len(data), generator=gen)[:4096]].to(dev)
    residual = net.encoder(sample)
    for level, book in enumerate(net.codebooks):
        dead = torch.nonzero(usage[level] == 0).flatten()
        if len(dead):
            pick = torch.randint(len(residual), (len(dead),), generator=gen).to(dev)
            book.data[dead.to(dev)] = residual[pick]
        residual = residual - book[torch.cdist(residual, book).argmin(1)]

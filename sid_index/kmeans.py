"""k-means and nearest-centroid assignment behind one interface, with a PyTorch and a faiss backend.

PyTorch runs on CPU or CUDA: assignment is a chunked matrix product (||x||² - 2x·c + ||c||²), centroid
updates stay on the device. faiss is the reference (faiss-cpu, or faiss-gpu where installed). Same seed,
data and device type give the same centroids and codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import numpy as np
import torch

Init = Literal["kmeans++", "random"]
BackendName = Literal["torch", "faiss"]
Precision = Literal["fp32", "tf32", "bf16"]
BACKENDS: tuple[str, ...] = get_args(BackendName)
PRECISIONS: tuple[str, ...] = get_args(Precision)
# Rows per distance block: about 8 MiB of distances on CPU (L2/L3-sized), about 512 MiB on CUDA.
CPU_BLOCK, CUDA_BLOCK = 1 << 21, 1 << 27
ROW_BLOCK = 1 << 20  # rows per in-place residual update (no full-size temporary)
Rows = np.ndarray | torch.Tensor
SPLIT_EPS = 1 / 1024  # faiss's relative perturbation when it splits a cluster for an empty one
SEED_MIN_NORM = 0.1  # rows shorter than this share of the median norm do not seed centroids (see _seedable)


@dataclass(frozen=True)
class KMeansParams:
    """Training settings shared by the backends; `collapse_retries`: how many more seeds RQ-KMeans tries for a
    level that collapsed (see `sid_index.rq.collapsed`)."""

    iters: int = 20
    seed: int = 0
    init: Init = "random"
    max_points_per_centroid: int = 256
    restarts: int = 1
    collapse_retries: int = 3


@dataclass
class Assignment:
    """Nearest centroids: `codes` (n,), squared distances (n,), and the top-`t` candidates per row."""

    codes: np.ndarray
    distances: np.ndarray
    candidates: np.ndarray | None = None
    candidate_distances: np.ndarray | None = None


class Backend(Protocol):
    """What RQ-KMeans needs from a backend; `device`: where it wants the residuals kept (see `Residuals`)."""

    name: str
    device: torch.device

    def train(self, x: Rows, k: int, params: KMeansParams) -> np.ndarray:
        """Centroids (k, d) float32."""
        ...

    def assign(self, x: Rows, centroids: np.ndarray, top: int = 1) -> Assignment:
        """Nearest centroid of each row (and the `top` nearest when top > 1)."""
        ...


class Residuals:
    """The rows residual quantisation works on: a float32 copy of the input from which each level's codewords
    are subtracted in place. Kept on `device` when it takes at most a third of that GPU's free memory (every
    level then runs without host transfers), else in host memory, where the arithmetic is numpy's and rows
    travel to the backend's device block by block."""

    def __init__(self, x: np.ndarray, device: torch.device):
        array = np.ascontiguousarray(x, dtype=np.float32)
        fits = device.type == "cuda" and array.nbytes <= _free_gpu_memory(device) // 3
        if np.may_share_memory(array, x) and not (fits and array.flags.writeable):
            array = array.copy()  # host rows change in place, and torch wants writable memory
        self.rows = torch.from_numpy(array).to(device if fits else "cpu")

    def subtract(self, centroids: np.ndarray, codes: np.ndarray) -> None:
        """Take each row's codeword (`centroids[codes]`) off it."""
        if self.rows.device.type == "cpu":
            rows = self.rows.numpy()
            for start in range(0, len(rows), ROW_BLOCK):
                rows[start : start + ROW_BLOCK] -= centroids[codes[start : start + ROW_BLOCK]]
            return
        book = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32)).to(self.rows.device)
        where = torch.from_numpy(codes).to(self.rows.device, torch.long)
        for start in range(0, len(self.rows), ROW_BLOCK):
            self.rows[start : start + ROW_BLOCK] -= book[where[start : start + ROW_BLOCK]]

    def squared_norms(self) -> np.ndarray:
        """Each row's squared length (the reconstruction error so far)."""
        if self.rows.device.type == "cpu":
            rows = self.rows.numpy()
            return (rows * rows).sum(1)
        blocks = [(b * b).sum(1) for b in self.rows.split(ROW_BLOCK)]
        return torch.cat(blocks).cpu().numpy() if blocks else np.zeros(0, np.float32)


def _free_gpu_memory(device: torch.device) -> int:
    """Bytes free on the GPU, counting what PyTorch's caching allocator holds but no tensor uses."""
    return torch.cuda.mem_get_info(device)[0] + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def _host(x: Rows) -> np.ndarray:
    """`x` as a contiguous float32 numpy array (a view where it already is one in host memory)."""
    values = x.cpu().numpy() if isinstance(x, torch.Tensor) else x
    return np.ascontiguousarray(values, dtype=np.float32)


def _subsample(x: torch.Tensor, k: int, params: KMeansParams) -> torch.Tensor:
    limit = k * params.max_points_per_centroid
    if len(x) <= limit:
        return x
    rng = np.random.default_rng(params.seed)
    return x[torch.from_numpy(np.sort(rng.choice(len(x), limit, replace=False))).to(x.device)]


def split_largest(centroids: torch.Tensor, counts: torch.Tensor, gen: torch.Generator) -> None:
    """Give each empty cluster (count 0) half of a populous one, as faiss does; `centroids` change in place.

    The cluster to split is drawn with probability proportional to its size minus one; the empty centroid
    takes a copy of it and both move apart by a symmetric relative perturbation of 1/1024 (even dimensions
    up for one, down for the other). A random data point instead (the usual refill) loses to a centroid
    near the mean on residual-like data, where every point is nearly orthogonal to every other, and the
    level collapses onto that one codeword.
    """
    counts = counts.double().clone()
    sign = torch.ones(centroids.shape[1], dtype=centroids.dtype, device=centroids.device)
    sign[1::2] = -1
    empty = torch.nonzero(counts == 0).flatten().tolist()
    for ci in empty:
        weights = (counts - 1).clamp_min(0)
        if float(weights.sum()) <= 0:
            break  # every cluster holds at most one point: nothing left to split
        cj = int(torch.multinomial(weights, 1, generator=gen))
        centroids[ci] = centroids[cj] * (1 + SPLIT_EPS * sign)
        centroids[cj] = centroids[cj] * (1 - SPLIT_EPS * sign)
        counts[ci] = torch.floor(counts[cj] / 2)
        counts[cj] -= counts[ci]


def _seedable(x: torch.Tensor, k: int) -> torch.Tensor:
    """Rows that may seed a centroid: not those earlier levels already (nearly) reconstructed.

    On residuals, where points are nearly orthogonal, a seed near zero is closer to almost every point than
    any other seed and takes the whole level in the first assignment (perplexity near 1). Rows shorter than
    SEED_MIN_NORM of the median norm are left out while k rows remain; other rows seed as in faiss.
    """
    norms = x.norm(dim=1)
    keep = norms >= SEED_MIN_NORM * norms.median()
    return x[keep] if int(keep.sum()) >= k else x


class TorchBackend:
    """k-means in PyTorch on `device` (CPU or CUDA); float32, TF32 or bf16 matrix products."""

    def __init__(self, device: str = "auto", precision: Precision = "fp32", chunk: int | None = None):
        self.device = torch.device(
            "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
        )
        self.precision, self.chunk = precision, chunk
        self.name = f"torch-{self.device.type}"

    def _matmul_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def _nearest(
        self, x: torch.Tensor, c: torch.Tensor, top: int, distances: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Top-`top` squared distances (None unless `distances`) and indices for each row of x, chunk by chunk."""
        c_norm = (c * c).sum(1)
        cm = c.to(self._matmul_dtype())
        dists, idx = [], []
        chunk = self.chunk or max(256, (CUDA_BLOCK if self.device.type == "cuda" else CPU_BLOCK) // len(c))
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = self.precision == "tf32"
        try:
            for start in range(0, len(x), chunk):
                xb = x[start : start + chunk].to(self.device)
                # ||c||² - 2 x·c in one fused product; ||x||² is added to the winners only.
                if cm.dtype == torch.float32:
                    partial = torch.addmm(c_norm, xb, cm.T, beta=1.0, alpha=-2.0)
                else:
                    partial = c_norm - 2 * (xb.to(cm.dtype) @ cm.T).float()
                if top == 1 and partial.device.type == "cpu":  # numpy's SIMD argmin is ~6x torch.min on CPU
                    where = torch.from_numpy(partial.numpy().argmin(1)[:, None])
                    values = partial.gather(1, where) if distances else None
                elif top == 1:
                    values, where = partial.min(dim=1, keepdim=True)
                else:
                    values, where = torch.topk(partial, top, dim=1, largest=False, sorted=True)
                if distances and values is not None:
                    dists.append((values + (xb * xb).sum(1, keepdim=True)).clamp_min_(0))
                idx.append(where)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        return (torch.cat(dists) if distances else None), torch.cat(idx)

    def _init(self, x: torch.Tensor, k: int, params: KMeansParams, gen: torch.Generator) -> torch.Tensor:
        x = _seedable(x, k)
        n = len(x)
        if params.init == "random" or k >= n:
            pick = torch.randperm(n, generator=gen, device="cpu")[:k]
            return x[pick.to(x.device)].clone()
        # Greedy k-means++ on a bounded pool: each step draws a few D²-weighted candidates and keeps the
        # one that lowers the total distance most.
        pool = x[torch.randperm(n, generator=gen)[: min(n, max(20 * k, 4096))].to(x.device)]
        trials = 2 + int(np.log(k))
        first = int(torch.randint(len(pool), (1,), generator=gen).item())
        centroids = [pool[first]]
        best = ((pool - pool[first]) ** 2).sum(1)
        for _ in range(1, k):
            probs = (best / best.sum()).cpu().double() if float(best.sum()) > 0 else torch.ones(len(pool)).double()
            picks = torch.multinomial(probs, trials, replacement=True, generator=gen).to(pool.device)
            candidate = torch.minimum(best[None, :], torch.cdist(pool[picks], pool).pow(2))
            choice = int(candidate.sum(1).argmin())
            centroids.append(pool[picks[choice]])
            best = candidate[choice]
        return torch.stack(centroids)

    def train(self, x: Rows, k: int, params: KMeansParams) -> np.ndarray:
        data = x if isinstance(x, torch.Tensor) else torch.from_numpy(_host(x))
        data = _subsample(data, k, params).to(self.device, torch.float32)
        best, best_inertia = None, float("inf")
        for restart in range(params.restarts):
            centroids = self._lloyd(data, k, params, torch.Generator().manual_seed(params.seed + 7919 * restart))
            if params.restarts == 1:
                return centroids.float().cpu().numpy()
            d, _ = self._nearest(data, centroids, 1)
            assert d is not None
            inertia = float(d.sum())
            if inertia < best_inertia:
                best, best_inertia = centroids, inertia
        assert best is not None
        return best.float().cpu().numpy()

    def _lloyd(self, data: torch.Tensor, k: int, params: KMeansParams, gen: torch.Generator) -> torch.Tensor:
        centroids = self._init(data, k, params, gen)
        previous = None
        for _ in range(params.iters):
            idx = self._nearest(data, centroids, 1, distances=False)[1][:, 0]
            if previous is not None and torch.equal(idx, previous):
                break  # converged: the same assignment gives the same centroids (faiss stops early too)
            sums = torch.zeros_like(centroids).index_add_(0, idx, data)
            counts = torch.bincount(idx, minlength=k).float()
            empty = counts == 0
            centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
            previous = idx
            if bool(empty.any()):  # split centroids move: not converged whatever the next assignment
                split_largest(centroids, counts.cpu(), gen)
                previous = None
        return centroids

    def assign(self, x: Rows, centroids: np.ndarray, top: int = 1) -> Assignment:
        xt = x.float() if isinstance(x, torch.Tensor) else torch.from_numpy(_host(x))  # rows move chunk by chunk
        ct = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32)).to(self.device)
        dt, it = self._nearest(xt, ct, min(top, len(centroids)))
        assert dt is not None
        d, idx = dt.cpu().numpy(), it.cpu().numpy().astype(np.int32)
        return Assignment(idx[:, 0].copy(), d[:, 0].copy(), idx if top > 1 else None, d if top > 1 else None)


class FaissBackend:
    """faiss k-means and exact L2 search (GPU when faiss-gpu is installed and `gpu` is set)."""

    def __init__(self, gpu: bool = False):
        import faiss

        self.faiss = faiss
        self.gpu = gpu and hasattr(faiss, "StandardGpuResources")
        self.name = "faiss-gpu" if self.gpu else "faiss-cpu"
        self.device = torch.device("cpu")  # faiss takes host arrays, also on its GPU index

    def train(self, x: Rows, k: int, params: KMeansParams) -> np.ndarray:
        init = (
            self.faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS
            if params.init == "kmeans++"
            else self.faiss.ClusteringInitMethod_RANDOM
        )
        km = self.faiss.Kmeans(
            x.shape[1],
            k,
            niter=params.iters,
            seed=params.seed,
            gpu=self.gpu,
            max_points_per_centroid=params.max_points_per_centroid,
            init_method=init,
            min_points_per_centroid=1,
            nredo=params.restarts,
        )
        km.train(_host(x))
        if km.centroids is None:
            raise RuntimeError("faiss k-means returned no centroids")
        return km.centroids.astype(np.float32)

    def assign(self, x: Rows, centroids: np.ndarray, top: int = 1) -> Assignment:
        index: Any = self.faiss.IndexFlatL2(centroids.shape[1])
        if self.gpu:
            index = self.faiss.index_cpu_to_gpu(self.faiss.StandardGpuResources(), 0, index)
        index.add(np.ascontiguousarray(centroids, dtype=np.float32))
        d, idx = index.search(_host(x), min(top, len(centroids)))
        idx = idx.astype(np.int32)
        return Assignment(idx[:, 0].copy(), d[:, 0].copy(), idx if top > 1 else None, d if top > 1 else None)


def make_backend(name: BackendName, device: str = "auto", precision: Precision = "fp32") -> Backend:
    """`torch` (CPU or CUDA per `device`) or `faiss` (GPU when `device` is cuda and faiss-gpu is installed)."""
    if name == "torch":
        return TorchBackend(device, precision)
    if name == "faiss":
        return FaissBackend(gpu=device == "cuda")
    raise ValueError(f"unknown backend {name!r}; choose torch or faiss")

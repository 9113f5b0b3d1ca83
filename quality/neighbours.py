"""Exact inner-product nearest neighbours: faiss on CPU, PyTorch on CUDA."""

from __future__ import annotations

import numpy as np
import torch


def knn(queries: np.ndarray, gallery: np.ndarray, k: int, device: str = "auto", chunk: int = 8192) -> np.ndarray:
    """Indices (n_queries, k) of the k gallery rows with the largest inner product, best first."""
    k = min(k, len(gallery))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        g = torch.from_numpy(np.ascontiguousarray(gallery, dtype=np.float32)).cuda()
        out = []
        for start in range(0, len(queries), chunk):
            q = torch.from_numpy(np.ascontiguousarray(queries[start : start + chunk], dtype=np.float32)).cuda()
            out.append(torch.topk(q @ g.T, k, dim=1).indices.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)
    import faiss

    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(np.ascontiguousarray(gallery, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)[1]

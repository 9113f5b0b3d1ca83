"""Planted-cluster embeddings for the semantic-ID tests."""

import numpy as np


def planted(n_clusters: int = 8, per_cluster: int = 100, dim: int = 32, noise: float = 0.05, seed: int = 0):
    """Unit vectors around `n_clusters` well separated centres, and each row's true cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    x = centres[labels] + noise * rng.normal(size=(len(labels), dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    order = rng.permutation(len(labels))
    return x[order].astype(np.float32), labels[order]


def purity(codes: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose code's majority label is their own label."""
    hits = 0
    for code in np.unique(codes):
        hits += np.bincount(labels[codes == code]).max()
    return hits / len(codes)

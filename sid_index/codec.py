"""Semantic-ID codes as integers and tokens: mixed-radix keys, token offsets, AL-GR `C{id}` strings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def offsets(sizes: Sequence[int]) -> list[int]:
    """Token offset of each level: the running sum of the codebook sizes before it."""
    return [0, *np.cumsum(sizes)[:-1].tolist()]


def vocabulary_size(sizes: Sequence[int]) -> int:
    """Number of SID tokens over all levels."""
    return int(sum(sizes))


def token_ids(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Token id of every code: code + offset of its level."""
    return codes.astype(np.int64) + np.asarray(offsets(sizes), dtype=np.int64)


def render(codes: np.ndarray, sizes: Sequence[int]) -> list[str]:
    """AL-GR token strings, `C{t1}C{t2}C{t3}` with t = code + level offset."""
    tokens = token_ids(codes, sizes)
    return ["".join(f"C{t}" for t in row) for row in tokens.tolist()]


def keys(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """One int64 per SID (mixed radix over the level sizes) for exact vectorised counting."""
    if float(np.prod(np.asarray(sizes, dtype=np.float64))) >= 2**63:
        raise ValueError(f"codebook sizes {list(sizes)} do not fit a 64-bit SID key")
    out = np.zeros(len(codes), dtype=np.int64)
    for level, size in enumerate(sizes):
        out = out * size + codes[:, level].astype(np.int64)
    return out


def prefix_keys(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Keys of the SID prefixes (all levels but the last)."""
    return keys(codes[:, :-1], sizes[:-1]) if len(sizes) > 1 else np.zeros(len(codes), dtype=np.int64)


def auto_sizes(n_items: int, levels: int = 3, largest: int = 8192) -> list[int]:
    """Codebook sizes for a catalogue of `n_items`: a power of two near 2·n^(1/levels), at most `largest`."""
    per_level = max(2.0, 2 * n_items ** (1 / levels))
    return [int(min(largest, 2 ** int(np.ceil(np.log2(per_level)))))] * levels

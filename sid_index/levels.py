"""How one level of codes is used: utilisation, entropy, perplexity and dead codes."""

from __future__ import annotations

import numpy as np


def level_metrics(codes: np.ndarray, size: int) -> dict:
    """Utilisation, entropy (bits), perplexity and dead codes of one level."""
    counts = np.bincount(codes, minlength=size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    used = int((counts > 0).sum())
    return {
        "size": size,
        "used": used,
        "utilisation": used / size,
        "dead_codes": size - used,
        "entropy_bits": entropy,
        "perplexity": float(2**entropy),
    }

"""How well published codebooks still fit a catalogue: the reconstruction error of items they never saw."""

from __future__ import annotations

import numpy as np

from sid_index.rq import SidModel


def error_ratio(model: SidModel, vectors: np.ndarray, reference: float, batch: int = 65_536) -> float:
    """Mean squared reconstruction error of `vectors` under `model`, divided by the build's own mean `reference`.

    1.0 means the new items are encoded as well as the items the codebooks were built on; 0.0 when there
    are no vectors.
    """
    if not len(vectors):
        return 0.0
    total = sum(
        float(model.encode(vectors[start : start + batch], top=1).errors[:, -1].sum())
        for start in range(0, len(vectors), batch)
    )
    return total / len(vectors) / max(reference, 1e-12)

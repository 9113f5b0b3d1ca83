"""Collaborative alignment brings co-occurring items into each other's nearest neighbours."""

import numpy as np
import polars as pl

from embeddings.align import (
    AlignConfig,
    load_projection,
    partner_in_neighbours,
    project,
    projection_bytes,
    train_projection,
)
from ingest.synthetic import Generator


def _pairs(gen: Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = {item: i for i, item in enumerate(gen.item_ids)}
    steps = (
        gen.events()
        .with_columns(nxt=pl.col("item_id").shift(-1).over("user_id"))
        .drop_nulls()
        .filter(pl.col("item_id") != pl.col("nxt"))
        .group_by("item_id", "nxt")
        .len()
    )
    return (
        np.array([index[i] for i in steps["item_id"]]),
        np.array([index[i] for i in steps["nxt"]]),
        steps["len"].to_numpy(),
    )


def test_alignment_raises_the_share_of_partners_in_the_top10():
    gen = Generator("tiny", seed=0)
    features = gen.embeddings()
    left, right, weight = _pairs(gen)
    before = partner_in_neighbours(features, left, right, k=10)
    projection = train_projection(features, left, right, weight, AlignConfig(epochs=30, device="cpu"))
    after = partner_in_neighbours(project(projection, features), left, right, k=10)
    assert after > before + 0.1, (before, after)
    again = load_projection(projection_bytes(projection))
    np.testing.assert_array_equal(project(again, features), project(projection, features))


def test_alignment_is_deterministic_on_cpu():
    gen = Generator("tiny", seed=1)
    features = gen.embeddings()
    left, right, weight = _pairs(gen)
    config = AlignConfig(epochs=2, device="cpu", seed=5)
    a = train_projection(features, left, right, weight, config).weight.detach().numpy()
    b = train_projection(features, left, right, weight, config).weight.detach().numpy()
    np.testing.assert_array_equal(a, b)

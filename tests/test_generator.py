"""The synthetic generator: deterministic, and structured so that embeddings and SIDs mean something."""

import json

import numpy as np
import polars as pl

from ingest.synthetic import SCALES, Generator, generate


def test_same_seed_same_files(tmp_path):
    a, b, c = (generate(tmp_path / n, "tiny", seed=s) for n, s in (("a", 3), ("b", 3), ("c", 4)))
    assert a == b and a != c
    for rel in ["events/ds=2025-01-01/events.csv", "algr/origin_behavior/s1.csv", "algr/item_emb/item_emb_000.csv"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_embeddings_cluster_by_category():
    gen = Generator("tiny", seed=0)
    vectors, cats = gen.embeddings(), gen.item_cat
    sims = vectors @ vectors.T
    same = cats[:, None] == cats[None, :]
    np.fill_diagonal(same, False)
    other = cats[:, None] != cats[None, :]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert sims[same].mean() > 0.7
    assert sims[other].mean() < 0.3


def test_popularity_is_heavy_tailed_and_sessions_stay_in_related_categories():
    gen = Generator("demo", seed=0)
    events = gen.events()
    counts = events.group_by("item_id").len()["len"].sort(descending=True).to_numpy()
    assert counts[: len(counts) // 10].sum() > 0.35 * counts.sum()
    cat_of = dict(zip(gen.item_ids, gen.item_cat, strict=True))
    cats = events.with_columns(cat=pl.col("item_id").replace_strict(cat_of)).select("user_id", "cat")
    steps = cats.with_columns(prev=pl.col("cat").shift(1).over("user_id")).drop_nulls()
    related = {(c, int(r)) for c in range(gen.scale.categories) for r in gen.related[c]}
    close = sum(1 for p, c in steps.select("prev", "cat").iter_rows() if p == c or (p, c) in related)
    assert close / steps.height > 0.9


def test_stages_fall_on_consecutive_days_with_test_users_from_the_next_day(tmp_path):
    manifest = generate(tmp_path, "tiny", seed=1)
    assert manifest["days"] == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    for stage in (1, 2, 3):
        assert manifest["counts"][f"sequences_s{stage}"] > 0 and manifest["counts"][f"sequences_s{stage}_test"] > 0
    assert SCALES["large"].items >= 1_000_000
    assert SCALES["large"].users * SCALES["large"].events_per_user >= 10_000_000

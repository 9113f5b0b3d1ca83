"""SID assignment: candidates computed only for over-capacity SIDs give the codes that every item's candidates
give, and the Spark path (broadcast model, tasks per prefix group) gives every item the same SID."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from lake.lake import Lake
from sid_index.build import BuildConfig, assign, tiebreaks
from sid_index.collisions import resolve
from sid_index.kmeans import KMeansParams, TorchBackend
from sid_index.rq import train_rq_kmeans
from tests.helpers import planted

SIZES = [4, 4, 8]


def _catalogue(n_clusters: int = 16, per_cluster: int = 60):
    x, _ = planted(n_clusters=n_clusters, per_cluster=per_cluster, dim=16, noise=0.3)
    x = np.concatenate([x, x[:40]])  # exact duplicates: ties that only the item-id hash breaks
    ids = [f"item-{i:05d}" for i in range(len(x))]
    model = train_rq_kmeans(x, SIZES, TorchBackend("cpu"), KMeansParams(iters=8, seed=1))
    return ids, x.astype(np.float32), model


def _stream(ids, x, rows: int = 97):
    def batches():
        for start in range(0, len(ids), rows):
            yield pa.record_batch(
                {
                    "item_id": pa.array(ids[start : start + rows]),
                    "embedding": pa.FixedSizeListArray.from_arrays(
                        pa.array(x[start : start + rows].ravel()), x.shape[1]
                    ),
                }
            )

    return batches


@pytest.mark.parametrize("policy", ["knn_capacity", "random_capacity", "suffix"])
def test_candidates_on_demand_give_the_codes_of_all_candidates(policy):
    ids, x, model = _catalogue()
    config = BuildConfig(sizes=tuple(SIZES), collision=policy, capacity=2, candidates=8, resolve_chunk_items=300)
    assigned = assign(model, _stream(ids, x), config)
    full = model.encode(x, top=8)
    expected = resolve(
        full.codes, full.candidates, full.candidate_distances, SIZES, policy, 2, 0, None, tiebreaks(pl.Series(ids))
    )
    np.testing.assert_array_equal(assigned.raw_codes, full.codes)
    np.testing.assert_array_equal(assigned.resolution.codes, expected.codes)
    assert assigned.resolution.report["items_moved"] == expected.report["items_moved"]
    assert assigned.item_ids.to_list() == ids
    np.testing.assert_allclose(assigned.errors, full.errors.mean(0), rtol=1e-5)
    if policy == "knn_capacity":
        assert 0 < assigned.timings["items_with_candidates"] < len(ids)


def _lake_of(path, ids, x, files: int = 3) -> Lake:
    """The catalogue as a lake's item_embeddings table of `files` files (the one model's partition)."""
    lake = Lake(path)
    for part in np.array_split(np.arange(len(ids)), files):
        rows = len(part)
        lake.append(
            "item_embeddings",
            pa.table(
                {
                    "item_id": pa.array([ids[i] for i in part]),
                    "modalities": pa.array(["image"] * rows),
                    "embedding": pa.array(x[part].tolist(), pa.list_(pa.float32())),
                    "dim": pa.array([x.shape[1]] * rows, pa.int32()),
                    "content_hash": pa.nulls(rows, pa.string()),
                    "source": pa.array(["test"] * rows),
                    "run_id": pa.array(["test"] * rows),
                    "model": pa.array(["m"] * rows),
                }
            ),
            run_id="test",
        )
    return lake


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.parametrize("policy", ["knn_capacity", "random_capacity", "suffix"])
def test_the_spark_path_gives_every_item_the_same_sid(spark, tmp_path, policy):
    from builds.spark_assign import assign_with_spark
    from lake.spark import table_files

    ids, x, model = _catalogue()
    config = BuildConfig(sizes=tuple(SIZES), collision=policy, capacity=2, candidates=8)
    local = assign(model, _stream(ids, x), config)
    lake = _lake_of(tmp_path / "lake", ids, x)
    source = table_files(spark, lake, "item_embeddings", where={"model": "m"}, columns=["item_id", "embedding"])
    distributed = assign_with_spark(model, source, config)

    def by_item(assigned):
        return pl.DataFrame(
            {
                "item_id": assigned.item_ids,
                "raw": assigned.raw_codes.tolist(),
                "codes": assigned.resolution.codes.tolist(),
            }
        ).sort("item_id")

    assert by_item(distributed).equals(by_item(local))
    for key in ("collision_rate_before", "collision_rate_after", "items_moved", "unplaced", "largest_group_after"):
        assert distributed.resolution.report[key] == local.resolution.report[key], key
    np.testing.assert_allclose(distributed.errors, local.errors, rtol=1e-5)


@pytest.mark.spark
def test_the_spark_path_refuses_an_empty_catalogue_as_the_in_process_path_does(spark, tmp_path):
    from builds.spark_assign import assign_with_spark
    from lake.spark import table_files

    ids, x, model = _catalogue()
    lake = _lake_of(tmp_path / "lake", ids[:30], x[:30], files=1)
    source = table_files(spark, lake, "item_embeddings", where={"model": "other"}, columns=["item_id", "embedding"])
    config = BuildConfig(sizes=tuple(SIZES))
    with pytest.raises(ValueError, match="no items to assign"):
        assign_with_spark(model, source, config)
    with pytest.raises(ValueError, match="no items to assign"):
        assign(model, lambda: iter([]), config)


def test_large_batches_encoded_in_slices_give_the_same_assignment(monkeypatch):
    from sid_index import build

    ids, x, model = _catalogue(n_clusters=32, per_cluster=80)  # 2 600 items, one batch
    config = BuildConfig(sizes=tuple(SIZES), capacity=2, candidates=8)
    whole = assign(model, _stream(ids, x, rows=len(ids)), config)
    monkeypatch.setattr(build, "ENCODE_BLOCK_BYTES", 1)  # slices of the 1 024-row minimum
    encode, rows = model.encode, []
    monkeypatch.setattr(model, "encode", lambda x, top=8: rows.append(len(x)) or encode(x, top))
    sliced = assign(model, _stream(ids, x, rows=len(ids)), config)
    assert rows[:3] == [1024, 1024, len(ids) - 2048]
    np.testing.assert_array_equal(sliced.raw_codes, whole.raw_codes)
    np.testing.assert_array_equal(sliced.resolution.codes, whole.resolution.codes)
    assert sliced.item_ids.to_list() == ids and sliced.timings["items_with_candidates"] > 0


def test_a_catalogue_within_capacity_needs_no_candidates():
    ids, x, model = _catalogue()
    config = BuildConfig(sizes=tuple(SIZES), capacity=10_000, candidates=8)
    assigned = assign(model, _stream(ids, x), config)
    np.testing.assert_array_equal(assigned.resolution.codes, assigned.raw_codes)
    assert assigned.timings["items_with_candidates"] == 0 and assigned.resolution.report["items_moved"] == 0

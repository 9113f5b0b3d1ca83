"""SID assignment: candidates computed only for over-capacity SIDs give the codes that every item's candidates
give, and the Spark path (broadcast model, tasks per prefix group, rows written by the tasks) gives every item the
same SID and the same figures; a killed Spark assignment changes nothing visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

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
ROOT = Path(__file__).resolve().parent.parent


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
def test_the_spark_path_writes_every_item_the_same_sid(spark, tmp_path, policy):
    from builds.spark_assign import SidsTarget, assign_with_spark
    from lake.spark import table_files

    ids, x, model = _catalogue()
    config = BuildConfig(sizes=tuple(SIZES), collision=policy, capacity=2, candidates=8)
    local = assign(model, _stream(ids, x), config)
    lake = _lake_of(tmp_path / "lake", ids, x)
    source = table_files(spark, lake, "item_embeddings", where={"model": "m"}, columns=["item_id", "embedding"])
    written = assign_with_spark(model, source, config, SidsTarget(lake, "b1", "item_embeddings@v2:m", "run-1"))

    stored = _stored(lake, "b1")
    assert stored.drop("source", "run_id", "build_id").equals(local.frame().sort("item_id"))
    assert stored.select("source", "run_id", "build_id").unique().rows() == [("item_embeddings@v2:m", "run-1", "b1")]
    expected = local.metrics()
    for key in (
        "collision_rate_before",
        "collision_rate_after",
        "items_moved",
        "unplaced",
        "largest_group_before",
        "largest_group_after",
        "items",
        "utilisation_per_level",
        "utilisation_per_level_raw",
    ):
        assert written.figures[key] == expected[key], key
    assert written.sizes == list(local.resolution.sizes)
    assert written.version == lake.version("item_sids")
    np.testing.assert_allclose(written.figures["reconstruction_error_per_level"], local.errors, rtol=1e-5)
    assert not list((tmp_path / "lake" / "_staging").rglob("*.parquet"))


def _stored(lake: Lake, build_id: str) -> pl.DataFrame:
    """A build's item_sids rows as the lake holds them, in item-id order."""
    rows = lake.scan("item_sids").filter(pl.col("build_id") == build_id).collect()
    return rows.select("item_id", "codes_raw", "codes", "sid", "source", "run_id", "build_id").sort("item_id")


KILLED_RUN = """
import pathlib, sys
from builds.spark_assign import SidsTarget, assign_with_spark
from lake.lake import Lake
from lake.spark import spark_session, table_files
from sid_index.artifact import load_artifact
from sid_index.build import BuildConfig
lake = Lake(sys.argv[1])
model = load_artifact(pathlib.Path(sys.argv[2]).read_bytes())
source = table_files(spark_session("local[1]"), lake, "item_embeddings", columns=["item_id", "embedding"])
config = BuildConfig(sizes=(4, 4, 8), collision="suffix")
assign_with_spark(model, source, config, SidsTarget(lake, "b1", "s", "killed-run"))
"""


@pytest.mark.slow
@pytest.mark.spark
def test_a_killed_spark_assignment_leaves_the_build_as_it_was_and_the_next_run_replaces_it(spark, tmp_path):
    from builds.spark_assign import SidsTarget, assign_with_spark
    from lake.spark import table_files
    from sid_index.artifact import artifact_bytes

    ids, x, model = _catalogue()
    lake = _lake_of(tmp_path / "lake", ids, x)
    source = table_files(spark, lake, "item_embeddings", columns=["item_id", "embedding"])
    capped = BuildConfig(sizes=tuple(SIZES), capacity=2, candidates=8)
    assign_with_spark(model, source, capped, SidsTarget(lake, "b1", "s", "first-run"))
    before, version = _stored(lake, "b1"), lake.version("item_sids")
    (tmp_path / "model.bin").write_bytes(artifact_bytes(model))

    env = {**os.environ, "SIDFORGE_CRASH_AT": "sids-after-staging", "SPARK_LOCAL_IP": "127.0.0.1"}
    args = [sys.executable, "-c", KILLED_RUN, str(tmp_path / "lake"), str(tmp_path / "model.bin")]
    killed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    staged = tmp_path / "lake" / "_staging" / "item_sids" / "killed-run"
    assert list(staged.rglob("*.parquet")), "the killed run had staged its parts"
    assert lake.version("item_sids") == version and _stored(lake, "b1").equals(before)

    suffix = BuildConfig(sizes=tuple(SIZES), collision="suffix")
    assign_with_spark(model, source, suffix, SidsTarget(lake, "b1", "s", "third-run"))
    expected = assign(model, _stream(ids, x), suffix).frame().sort("item_id")
    assert _stored(lake, "b1").drop("source", "run_id", "build_id").equals(expected)
    assert lake.version("item_sids") == version + 1
    assert not staged.exists() and not list((tmp_path / "lake" / "_staging").rglob("*.json"))


@pytest.mark.spark
def test_the_spark_path_refuses_an_empty_catalogue_as_the_in_process_path_does(spark, tmp_path):
    from builds.spark_assign import SidsTarget, assign_with_spark
    from lake.spark import table_files

    ids, x, model = _catalogue()
    lake = _lake_of(tmp_path / "lake", ids[:30], x[:30], files=1)
    source = table_files(spark, lake, "item_embeddings", where={"model": "other"}, columns=["item_id", "embedding"])
    config = BuildConfig(sizes=tuple(SIZES))
    with pytest.raises(ValueError, match="no items to assign"):
        assign_with_spark(model, source, config, SidsTarget(lake, "b1", "s", "run"))
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

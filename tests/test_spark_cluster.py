"""Spark across hosts: a standalone master and a worker on 127.0.0.1, the worker in its own mount namespace
(no /tmp of the driver's, no project code on disk), the landing files and the lake in S3 (the moto server).
Ingest, publish and SID assignment on the cluster equal the polars engine and the in-process path."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from builds.spark_assign import SidsTarget, assign_with_spark
from ingest.run import ingest
from lake import Lake, storage
from lake.spark import spark_session, table_files
from publish.training_data import publish_training_data
from sid_index.build import BuildConfig, assign
from sid_index.kmeans import KMeansParams, TorchBackend
from sid_index.rq import train_rq_kmeans, vectors_of
from tests.object_store import CREDENTIALS, objects
from tests.spark_cluster import can_isolate, standalone_cluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.spark,
    pytest.mark.skipif(not can_isolate(), reason="needs root and unshare to isolate the worker"),
]
INPUTS = [("algr/origin_behavior", "algr-sequences"), ("algr/item_sid", "algr-item-sid"), ("events", "events")]
TABLES = ("user_sequences", "item_sids", "interactions", "quarantine")


@pytest.fixture(scope="module")
def cluster(s3_endpoint):
    """The master URL of a standalone cluster whose worker has the S3 server's credentials of its own."""
    with standalone_cluster({**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}) as master:
        yield master
    spark_session(master).stop()


@pytest.fixture
def landing(tiny_raw, s3_bucket):
    """The landing files in the bucket: the worker's tasks read them from there, not from the driver's disk."""
    return storage.upload_folder(tiny_raw, f"s3://{s3_bucket}/landing")


def _contents(lake: Lake, name: str) -> pl.DataFrame:
    frame = lake.scan(name).drop("run_id").collect()
    if name == "quarantine":  # where the landing file lay differs; what was quarantined must not
        frame = frame.with_columns(pl.col("source_file").str.split("/").list.slice(-2).list.join("/"))
    return frame.sort([c for c, kind in frame.schema.items() if not isinstance(kind, pl.List)])


def test_ingest_and_publish_on_the_cluster_equal_the_polars_engine(
    cluster, landing, tiny_raw, s3_bucket, tmp_path, monkeypatch
):
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.chdir(tmp_path)
    lakes = {"polars": Lake(tmp_path / "polars"), "spark": Lake(f"s3://{s3_bucket}/lake")}
    for folder, fmt in INPUTS:
        ingest(lakes["polars"], [tiny_raw / folder], fmt)
        ingest(lakes["spark"], [f"{landing}/{folder}"], fmt, engine="spark", spark_master=cluster)
    assert spark_session(cluster).sparkContext.master == cluster
    for name in TABLES:
        assert _contents(lakes["spark"], name).equals(_contents(lakes["polars"], name)), name
    assert lakes["spark"].scan("interactions").select(pl.len()).collect().item() > 0
    assert not any(tmp_path.glob("s3*")) and not any(tmp_path.glob(f"{s3_bucket}*"))

    shards = {}
    for engine, lake in lakes.items():
        report = publish_training_data(
            lake, build_id="algr-item_sid_final", engine=engine, spark_master=cluster, rows_per_shard=100
        )
        shards[engine] = [(s["path"], s["rows"], s["sha256"]) for s in report.published.manifest["shards"]]
    assert shards["spark"] == shards["polars"]
    assert len(shards["spark"]) > 1


def test_sid_assignment_on_the_cluster_equals_the_in_process_path(cluster, tiny_raw, s3_bucket, monkeypatch):
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    lake = Lake(f"s3://{s3_bucket}/lake")
    ingest(lake, [tiny_raw / "algr/item_emb"], "algr-item-emb")
    embeddings = lake.scan("item_embeddings").select("item_id", "embedding").collect().to_arrow()
    model = train_rq_kmeans(vectors_of(embeddings), [4, 4, 8], TorchBackend("cpu"), KMeansParams(iters=8, seed=1))
    config = BuildConfig(sizes=(4, 4, 8), collision="knn_capacity", capacity=2, candidates=8)
    local = assign(model, lambda: iter(embeddings.to_batches(max_chunksize=97)), config)
    source = table_files(spark_session(cluster), lake, "item_embeddings", columns=["item_id", "embedding"])
    written = assign_with_spark(model, source, config, SidsTarget(lake, "b1", "item_embeddings", "cluster-run"))

    stored = lake.scan("item_sids").filter(pl.col("build_id") == "b1").select("item_id", "codes_raw", "codes", "sid")
    assert stored.collect().sort("item_id").equals(local.frame().sort("item_id"))
    assert written.figures["items_moved"] == local.resolution.report["items_moved"]
    np.testing.assert_allclose(written.figures["reconstruction_error_per_level"], local.errors, rtol=1e-5)
    assert not [key for key in objects(s3_bucket) if "/_staging/" in key and key.endswith(".parquet")]


def test_the_shipped_code_archive_is_removed_when_the_driver_exits(cluster, tmp_path):
    temp = tmp_path / "driver-tmp"
    temp.mkdir()
    script = (
        "import sys, tempfile, pathlib\n"
        "from lake.spark import spark_session\n"
        "spark_session(sys.argv[1], app_name='archive-check')\n"
        "print([p.name for p in pathlib.Path(tempfile.gettempdir()).glob('sidforge-py-files-*')])\n"
    )
    env = {**os.environ, "TMPDIR": str(temp), "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run(
        [sys.executable, "-c", script, cluster], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    assert "sidforge-py-files-" in done.stdout.splitlines()[-1]
    assert not list(temp.glob("sidforge-py-files-*"))

"""The production profile end to end: `nightly_sid_rebuild` through Dagster's executor with the Spark engine on a
standalone cluster of two workers (each in its own mount namespace, with its own working folder), the lake and
the landing area on an S3 server, and an OpenCLIP model whose id holds `:`. The gate passes, the shards land in
the bucket, and the whole run uses one Spark application."""

from __future__ import annotations

import polars as pl
import pytest
from dagster import DagsterInstance

from builds.registry import BuildRegistry
from embeddings.model import TINY_CONFIG
from lake import Lake, storage
from lake.spark import spark_session
from pipelines.profile import PROFILES
from serving.reader import GRShards
from tests.object_store import CREDENTIALS, objects
from tests.spark_cluster import applications, can_isolate, standalone_cluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.spark,
    pytest.mark.skipif(not can_isolate(), reason="needs root and unshare to isolate the workers"),
]


def test_the_nightly_job_passes_on_a_cluster_with_an_s3_lake(
    s3_endpoint, s3_bucket, tiny_raw, tiny_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    landing = storage.upload_folder(tiny_raw, f"s3://{s3_bucket}/landing")
    root = f"s3://{s3_bucket}/lake"
    with standalone_cluster({**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}, cores=1, memory="2g", workers=2) as url:
        profile = {
            **PROFILES["production"],
            "SIDFORGE_LAKE": root,
            "SIDFORGE_LANDING": landing,
            "SIDFORGE_SPARK_MASTER": url,
            "SIDFORGE_CLIP_MODEL": "sidforge-tiny",
            "SIDFORGE_CLIP_CONFIG": str(TINY_CONFIG),
            "SIDFORGE_CLIP_WEIGHTS": str(tiny_checkpoint),
            "SIDFORGE_DEVICE": "cpu",
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
        for key, value in profile.items():
            monkeypatch.setenv(key, value)
        from pipelines.definitions import defs

        try:
            result = defs.resolve_job_def("nightly_sid_rebuild").execute_in_process(
                instance=DagsterInstance.ephemeral()
            )
            assert result.success
            assert len(applications(url)) == 1, applications(url)
        finally:
            spark_session(url).stop()

    lake = Lake(root)
    models = lake.scan("item_embeddings").select("model").unique().collect()["model"].to_list()
    assert any(":" in m for m in models), models
    build = BuildRegistry(lake).published()
    assert build is not None and build.status == "published"
    checks = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name.endswith("expectations")]
    assert checks and all(e.passed for e in checks)
    sids = lake.scan("item_sids").filter(pl.col("build_id") == build.build_id).select(pl.len()).collect().item()
    assert sids > 0
    dataset = lake.published_dataset()
    keys = set(objects(s3_bucket))
    version = dataset.rsplit("/", 1)[-1]
    assert f"lake/published/gr/{version}/manifest.json" in keys
    assert any(k.startswith(f"lake/published/gr/{version}/train/shard-") for k in keys)
    assert sum(1 for _ in GRShards(dataset, "train")) > 0
    assert not any(k.startswith("lake/_staging/") and "/_journal/" not in k for k in keys)

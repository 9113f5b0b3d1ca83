"""`sidforge publish` killed (SIGKILL) at each step on an object-store lake: readers never see a half-written
version, and running the same command again publishes it once, byte for byte as an uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ingest.run import ingest
from lake import Lake
from lake.faults import ENV
from publish.manifest import MANIFEST, read_manifest
from serving.reader import GRShards
from tests.object_store import objects

pytestmark = pytest.mark.slow
BUILD = "algr-item_sid_final"


def _publish(root: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false"}
    env.pop(ENV, None)
    if crash_at:
        env[ENV] = crash_at
    cmd = [sys.executable, "-m", "pipelines.cli", "publish", "--lake", root, "--build", BUILD]
    cmd += ["--rows-per-shard", "100"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("step", ["publish-after-shards", "publish-after-manifest"])
def test_a_killed_publish_on_s3_leaves_no_visible_version_and_a_rerun_publishes_once(tiny_raw, s3_bucket, step):
    root = f"s3://{s3_bucket}/lake"
    lake = Lake(root)
    ingest(lake, [tiny_raw / "algr" / "origin_behavior"], "algr-sequences")
    ingest(lake, [tiny_raw / "algr" / "item_sid"], "algr-item-sid")

    killed = _publish(root, crash_at=step)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert lake.scan("published_datasets").collect().height == 0
    written = [k for k in objects(s3_bucket) if k.startswith("lake/published/gr/")]
    assert any(k.endswith(".parquet") for k in written)
    assert any(k.endswith(MANIFEST) for k in written) == (step == "publish-after-manifest")
    if step == "publish-after-shards":
        version = written[0].split("/")[3]
        with pytest.raises(FileNotFoundError, match=r"no manifest\.json"):
            GRShards(f"{root}/published/gr/{version}", "train")

    done = _publish(root)
    assert done.returncode == 0, done.stderr[-2000:]
    again = _publish(root)
    assert again.returncode == 0, again.stderr[-2000:]
    registered = lake.scan("published_datasets").collect()
    assert registered.height == 1
    shards = GRShards(lake.published_path(registered["path"].item()), "train")
    assert len(shards) == sum(1 for _ in shards) > 0

    clean = Lake(f"s3://{s3_bucket}/clean")
    ingest(clean, [tiny_raw / "algr" / "origin_behavior"], "algr-sequences")
    ingest(clean, [tiny_raw / "algr" / "item_sid"], "algr-item-sid")
    assert _publish(clean.root).returncode == 0
    uninterrupted = read_manifest(clean.published_dataset())
    recovered = read_manifest(lake.published_path(registered["path"].item()))
    assert [s["sha256"] for s in recovered["shards"]] == [s["sha256"] for s in uninterrupted["shards"]]

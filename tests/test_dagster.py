"""The Dagster code location: it validates, and its ingest assets materialize tiny data into the lake."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from assets import ingest as ingest_assets
from assets.partitions import add_days
from assets.resources import EngineResource, LakeResource, LandingResource, SparkResource
from lake import Lake

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_definitions_validate(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    command = [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"]
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


def test_definitions_hold_the_ingest_assets_and_jobs():
    from pipelines.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"interactions", "user_sequences", "items", "precomputed_embeddings", "item_pairs"} <= keys
    assert defs.resolve_job_def("ingest_daily").partitions_def is not None
    assert defs.resolve_job_def("ingest_catalog") is not None


def test_ingest_assets_materialize_tiny_data(tmp_path, tiny_raw):
    lake_root = tmp_path / "lake"
    resources = {
        "lake": LakeResource(root=str(lake_root)),
        "landing": LandingResource(root=str(tiny_raw)),
        "engine": EngineResource(engine="polars"),
        "spark": SparkResource(),
    }
    instance = DagsterInstance.ephemeral()
    assert add_days(instance, ["2025-01-02"]) == ["2025-01-02"]
    day = materialize([ingest_assets.interactions], partition_key="2025-01-02", resources=resources, instance=instance)
    assert day.success
    meta = day.asset_materializations_for_node("interactions")[0].metadata
    assert meta["rows_read"].value == meta["rows_written"].value + meta["rows_quarantined"].value > 0
    catalog = materialize(
        [
            ingest_assets.user_sequences,
            ingest_assets.items,
            ingest_assets.precomputed_embeddings,
            ingest_assets.item_pairs,
        ],
        resources=resources,
        instance=instance,
    )
    assert catalog.success
    lake = Lake(lake_root)
    events = lake.scan("interactions").collect()
    assert events["ds"].unique().to_list() == ["2025-01-02"] and events.height == meta["rows_written"].value
    assert set(events["run_id"]) == {day.run_id}
    assert lake.scan("user_sequences").collect().height > 0
    assert lake.scan("items").select(pl.col("image").is_not_null().all()).collect().item()
    assert lake.scan("item_embeddings").collect()["model"].unique().to_list() == ["algr-item-emb"]
    pairs = lake.scan("item_pairs").collect()
    assert pairs.height > 0 and pairs["weight"].min() >= 1


def test_a_missing_landing_folder_fails_with_its_name(tmp_path):
    resources = {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "landing": LandingResource(root=str(tmp_path)),
        "engine": EngineResource(),
        "spark": SparkResource(),
    }
    instance = DagsterInstance.ephemeral()
    add_days(instance, ["2025-01-05"])
    result = materialize(
        [ingest_assets.interactions],
        partition_key="2025-01-05",
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    errors = [e.event_specific_data.error for e in result.all_events if e.is_step_failure]
    messages = [err.message + (err.cause.message if err.cause else "") for err in errors]
    assert any("events/ds=2025-01-05 does not exist" in m for m in messages), messages

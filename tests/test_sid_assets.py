"""The SID assets on tiny data: a build with capacity respected, a refresh that moves nothing, churn."""

import json

import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from assets import ingest as ingest_assets
from assets import sids as sid_assets
from assets.resources import EngineResource, LakeResource, LandingResource, SparkResource
from lake import Lake

TRAIN = {"ops": {"sid_codebooks": {"config": {"device": "cpu", "iters": 10, "seed": 1}}}}


@pytest.fixture
def built(tmp_path, tiny_raw):
    resources = {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "landing": LandingResource(root=str(tiny_raw)),
        "engine": EngineResource(),
        "spark": SparkResource(),
    }
    instance = DagsterInstance.ephemeral()
    assert materialize([ingest_assets.precomputed_embeddings], resources=resources, instance=instance).success
    result = materialize(
        [sid_assets.sid_codebooks, sid_assets.item_sids], resources=resources, instance=instance, run_config=TRAIN
    )
    assert result.success
    return resources, instance, result


def _meta(result, node):
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_build_writes_codebooks_sids_and_its_record(built):
    resources, _, result = built
    lake = Lake(resources["lake"].root)
    build_id = _meta(result, "sid_codebooks")["build_id"]
    meta = _meta(result, "item_sids")
    sids = lake.scan("item_sids").filter(pl.col("build_id") == build_id).collect()
    assert sids.height == 300 == meta["items_assigned"]
    per_sid = sids.group_by("sid").len()["len"]
    assert per_sid.max() <= 5 and meta["unplaced"] == 0
    assert meta["largest_group_after"] == per_sid.max()
    assert meta["collision_rate_after"] == pytest.approx(
        (sids.group_by("sid").len().filter(pl.col("len") > 1)["len"].sum()) / 300
    )
    assert sids["sid"][0].startswith("C") and sids["codes"].list.len().unique().to_list() == [3]
    record = lake.scan("sid_builds").filter(pl.col("build_id") == build_id).collect().row(0, named=True)
    assert record["status"] == "built" and record["sizes"] == [16, 16, 16]
    metrics = json.loads(record["metrics"])
    assert len(metrics["utilisation_per_level"]) == 3
    for level in range(3):
        used = sids["codes"].list.get(level).n_unique() / 16
        assert metrics["utilisation_per_level"][level] == pytest.approx(used)
    assert metrics["collision_rate_after"] == pytest.approx(meta["collision_rate_after"], abs=1e-6)
    errors = metrics["reconstruction_error_per_level"]
    assert errors[0] > errors[1] > errors[2]
    books = lake.scan("codebooks").filter(pl.col("build_id") == build_id).collect()
    assert books.height == 48 and books["centroid"].list.len().unique().to_list() == [512]
    assert Lake(lake.root).path("_artifacts") in json.loads(record["inputs"])["artifact"]


def test_refresh_adds_new_items_without_moving_published_sids(built):
    resources, instance, result = built
    lake = Lake(resources["lake"].root)
    build_id = _meta(result, "sid_codebooks")["build_id"]
    before = lake.scan("item_sids").filter(pl.col("build_id") == build_id).select("item_id", "sid").collect()
    base = lake.scan("item_embeddings").head(40).collect()
    rng = np.random.default_rng(0)
    new = base.with_columns(
        item_id=pl.format("new{}", pl.int_range(pl.len())),
        embedding=pl.Series(
            [(np.array(v) + 0.01 * rng.normal(size=512)).astype(np.float32).tolist() for v in base["embedding"]],
            dtype=pl.List(pl.Float32),
        ),
    )
    lake.append("item_embeddings", new, run_id="new-items")
    refresh = materialize(
        [sid_assets.item_sids],
        resources=resources,
        instance=instance,
        run_config={"ops": {"item_sids": {"config": {"refresh": True}}}},
    )
    assert _meta(refresh, "item_sids")["items_assigned"] == 40
    after = lake.scan("item_sids").filter(pl.col("build_id") == build_id).select("item_id", "sid").collect()
    assert after.height == 340
    assert before.join(after, on="item_id").filter(pl.col("sid") != pl.col("sid_right")).height == 0
    assert after.group_by("sid").len()["len"].max() <= 5


def test_a_rebuild_reports_churn(built):
    resources, instance, _ = built
    second = materialize(
        [sid_assets.sid_codebooks, sid_assets.item_sids],
        resources=resources,
        instance=instance,
        run_config={"ops": {"sid_codebooks": {"config": {"device": "cpu", "iters": 10, "seed": 2}}}},
    )
    meta = _meta(second, "item_sids")
    assert 0 < meta["churn"] <= 1
    lake = Lake(resources["lake"].root)
    builds = lake.scan("sid_builds").collect().height
    same = materialize(
        [sid_assets.sid_codebooks, sid_assets.item_sids],
        resources=resources,
        instance=instance,
        run_config={"ops": {"sid_codebooks": {"config": {"device": "cpu", "iters": 10, "seed": 2}}}},
    )
    assert _meta(same, "sid_codebooks")["result"] == "inputs unchanged, no new build"
    assert _meta(same, "item_sids")["result"] == "no new items"
    assert lake.scan("sid_builds").collect().height == builds


@pytest.mark.slow
@pytest.mark.spark
def test_item_sids_on_the_spark_engine_equal_the_polars_engine(tmp_path, tiny_raw, monkeypatch):
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    sids, figures, errors = {}, {}, {}
    apart = {"items_per_second_assign", "items_with_candidates", "engine", "reconstruction_error_per_level"}
    for engine in ("polars", "spark"):
        resources = {
            "lake": LakeResource(root=str(tmp_path / engine)),
            "landing": LandingResource(root=str(tiny_raw)),
            "engine": EngineResource(engine=engine),
            "spark": SparkResource(master="local[2]"),
        }
        instance = DagsterInstance.ephemeral()
        assert materialize([ingest_assets.precomputed_embeddings], resources=resources, instance=instance).success
        for seed in (1, 2):  # the second build's churn is counted against the first
            train = {"ops": {"sid_codebooks": {"config": {"device": "cpu", "iters": 10, "seed": seed}}}}
            result = materialize(
                [sid_assets.sid_codebooks, sid_assets.item_sids],
                resources=resources,
                instance=instance,
                run_config=train,
            )
            assert result.success
            assert _meta(result, "item_sids")["items_assigned"] == 300
        lake = Lake(resources["lake"].root)
        sids[engine] = lake.scan("item_sids").select("item_id", "codes", "sid").collect().sort("item_id")
        builds = lake.scan("sid_builds").sort("created_at").collect()
        figures[engine] = [
            {k: v for k, v in json.loads(m).items() if k not in apart and not k.endswith("_s") and k != "churn_against"}
            for m in builds["metrics"]
        ]
        errors[engine] = [json.loads(m)["reconstruction_error_per_level"] for m in builds["metrics"]]
        assert json.loads(builds["metrics"][0]).get("engine", "in process") == (
            "spark" if engine == "spark" else "in process"
        )
    assert sids["spark"].equals(sids["polars"])
    assert figures["spark"] == figures["polars"]
    np.testing.assert_allclose(errors["spark"], errors["polars"], rtol=1e-5)
    assert 0 < figures["spark"][1]["churn"] <= 1

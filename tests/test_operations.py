"""Operations: the nightly job end to end (twice: the second run changes nothing) and the landing sensor."""

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, build_sensor_context

from assets.partitions import add_days, daily
from assets.resources import (
    LandingResource,
)
from lake import Lake
from pipelines.schedules import nightly_schedule
from pipelines.sensors import landing_sensor
from tests.helpers import pipeline_defs, published_build


def test_nightly_job_twice_changes_nothing_the_second_time(tmp_path, tiny_raw, tiny_checkpoint):
    defs = pipeline_defs(tmp_path, tiny_raw, tiny_checkpoint)
    job = defs.resolve_job_def("nightly_sid_rebuild")
    instance = DagsterInstance.ephemeral()
    probe = {"ops": {"gr_probe": {"config": {"enabled": True, "epochs": 1, "max_examples": 30}}}}
    first = job.execute_in_process(instance=instance, run_config=probe)
    assert first.success
    lake = Lake(tmp_path / "lake")
    build = published_build(lake)
    assert build and lake.scan("item_sids").filter(pl.col("build_id") == build).collect().height == 300
    datasets = lake.scan("published_datasets").collect()
    assert datasets.height == 1 and datasets["build_id"][0] == build
    snapshot = {t: lake.scan(t).drop("run_id").collect() for t in ("items", "item_embeddings", "item_sids")}
    builds = lake.scan("sid_builds").select("build_id", "status").collect()
    second = job.execute_in_process(instance=instance)
    assert second.success
    for name, before in snapshot.items():
        after = lake.scan(name).drop("run_id").collect()
        keys = [c for c, t in before.schema.items() if not isinstance(t, pl.List) and t != pl.Binary]
        assert after.sort(keys).equals(before.sort(keys)), name
    assert lake.scan("sid_builds").select("build_id", "status").collect().equals(builds)
    assert lake.scan("published_datasets").collect()["version"].to_list() == datasets["version"].to_list()
    metrics = json.loads(lake.scan("sid_builds").filter(pl.col("build_id") == build).collect()["metrics"][0])
    report = Path(metrics["report"]).read_text()  # the gate wrote it again on the second run, the probe off
    assert f"<tr><td>HR@10</td><td>{metrics['probe_hr_at_10']:.4f}</td>" in report


def test_landing_sensor_adds_landed_days_and_requests_each_once(tmp_path, tiny_raw):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_raw / "events", landing / "events")
    (landing / "events" / "ds=someday").mkdir()
    (landing / "events" / "ds=someday" / "x.csv").write_text("user_id,item_id,behavior,timestamp\n")
    resources = {"landing": LandingResource(root=str(landing))}
    instance = DagsterInstance.ephemeral()
    days = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]

    def evaluate():
        return landing_sensor(build_sensor_context(resources=resources, instance=instance))

    first = evaluate()
    keys = {r.partition_key: r.run_key for r in first.run_requests}
    assert sorted(keys) == days
    assert [r.partition_keys for r in first.dynamic_partitions_requests] == [days]
    assert instance.get_dynamic_partitions(daily.name) == []  # the daemon adds them; here by hand
    add_days(instance, days)
    again = evaluate()
    assert {r.partition_key: r.run_key for r in again.run_requests} == keys and not again.dynamic_partitions_requests
    extra = landing / "events" / "ds=2025-01-02" / "late.csv"
    extra.write_text("user_id,item_id,behavior,timestamp\nu,i,pv,1735776000\n")
    changed = {r.partition_key: r.run_key for r in evaluate().run_requests}
    assert changed["2025-01-02"] != keys["2025-01-02"]
    assert {d: k for d, k in changed.items() if d != "2025-01-02"} == {
        d: k for d, k in keys.items() if d != "2025-01-02"
    }


def test_interactions_list_only_the_landed_days(tmp_path):
    instance = DagsterInstance.ephemeral()
    assert daily.get_partition_keys(dynamic_partitions_store=instance) == []
    assert add_days(instance, ["2025-01-02", "2025-01-01"]) == ["2025-01-01", "2025-01-02"]
    assert add_days(instance, ["2025-01-02"]) == []
    assert daily.get_partition_keys(dynamic_partitions_store=instance) == ["2025-01-01", "2025-01-02"]
    with pytest.raises(ValueError, match="not a day YYYY-MM-DD: 2025/01/03"):
        add_days(instance, ["2025/01/03"])


def test_nightly_schedule_is_configurable():
    assert nightly_schedule.cron_schedule == f"0 {os.environ.get('SIDFORGE_NIGHTLY_HOUR', '2')} * * *"
    assert nightly_schedule.execution_timezone == os.environ.get("SIDFORGE_TIMEZONE", "UTC")
    assert nightly_schedule.job_name == "nightly_sid_rebuild"


def test_new_items_refresh_the_published_build_without_moving_a_sid(tmp_path, tiny_raw, tiny_checkpoint):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_raw, landing)
    defs = pipeline_defs(tmp_path, landing, tiny_checkpoint)
    job = defs.resolve_job_def("nightly_sid_rebuild")
    instance = DagsterInstance.ephemeral()
    assert job.execute_in_process(instance=instance).success
    lake = Lake(tmp_path / "lake")
    build = published_build(lake)
    before = lake.scan("item_sids").filter(pl.col("build_id") == build).select("item_id", "sid").collect()
    emb = (landing / "algr" / "item_emb" / "item_emb_000.csv").read_text().splitlines()
    new_rows = [f"new{i:03d},{line.split(',', 1)[1]}" for i, line in enumerate(emb[1:11])]
    (landing / "algr" / "item_emb" / "item_emb_new.csv").write_text("\n".join([emb[0], *new_rows]) + "\n")
    result = job.execute_in_process(instance=instance)
    assert result.success
    codebooks = result.asset_materializations_for_node("sid_codebooks")[0].metadata
    assert codebooks["result"].value.startswith("refresh: 10 new items")
    assert codebooks["changed_items"].value == 0 and codebooks["new_item_error_ratio"].value <= 1.5
    assert published_build(lake) == build
    metrics = lake.scan("sid_builds").filter(pl.col("build_id") == build).collect()["metrics"][0]
    assert '"last_refresh"' in metrics
    after = lake.scan("item_sids").filter(pl.col("build_id") == build).select("item_id", "sid").collect()
    assert after.height == before.height + 10
    assert before.join(after, on="item_id").filter(pl.col("sid") != pl.col("sid_right")).height == 0
    assert after.group_by("sid").len()["len"].max() <= 5


def test_readers_see_the_old_or_the_new_build_never_a_mix(tmp_path, tiny_raw, tiny_checkpoint):
    import threading

    from serving.feature_store import FeatureStore

    defs = pipeline_defs(tmp_path, tiny_raw, tiny_checkpoint)
    instance = DagsterInstance.ephemeral()
    job = defs.resolve_job_def("nightly_sid_rebuild")
    assert job.execute_in_process(instance=instance).success
    lake = Lake(tmp_path / "lake")
    first = published_build(lake)
    items = lake.scan("item_sids").select("item_id").unique().collect()["item_id"].to_list()
    seen, stop = [], threading.Event()

    def read() -> None:
        store = FeatureStore(Lake(tmp_path / "lake"))
        while not stop.is_set():
            frame = store.sids(items)
            seen.append((frame["build_id"].unique().to_list(), frame.height))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        rebuild = {"ops": {"sid_codebooks": {"config": {"seed": 9, "mode": "rebuild"}}}}
        assert job.execute_in_process(instance=instance, run_config=rebuild).success
    finally:
        stop.set()
        reader.join()
    second = published_build(lake)
    assert second != first and len(seen) > 3
    assert all(len(builds) == 1 and builds[0] in (first, second) and height == 300 for builds, height in seen)
    assert {builds[0] for builds, _ in seen} <= {first, second}

"""The day's ingest asset counts events the day already holds from other files, and with
`dedupe_against_table` quarantines them instead of adding them."""

import shutil

import polars as pl
from dagster import DagsterInstance, RunConfig, materialize

from assets import ingest as ingest_assets
from assets.partitions import add_days
from assets.resources import EngineResource, LakeResource, LandingResource, SparkResource
from lake import Lake


def test_a_redelivered_day_is_counted_then_deduplicated(tmp_path, tiny_raw):
    landing = tmp_path / "landing"
    day = landing / "events" / "ds=2025-01-02"
    shutil.copytree(tiny_raw / "events" / "ds=2025-01-02", day)
    original = sorted(day.iterdir())
    resources = {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "landing": LandingResource(root=str(landing)),
        "engine": EngineResource(engine="polars"),
        "spark": SparkResource(),
    }
    instance = DagsterInstance.ephemeral()
    add_days(instance, ["2025-01-02"])

    def run(dedupe: bool):
        config = RunConfig(ops={"interactions": ingest_assets.DayConfig(dedupe_against_table=dedupe)})
        done = materialize(
            [ingest_assets.interactions],
            partition_key="2025-01-02",
            resources=resources,
            instance=instance,
            run_config=config,
        )
        assert done.success
        return {k: v.value for k, v in done.asset_materializations_for_node("interactions")[0].metadata.items()}

    first = run(False)
    assert first["rows_existing"] == 0
    for path in original:  # the same events arrive again under other names
        path.rename(path.with_name(f"redelivered-{path.name}"))
    counted = run(False)
    assert counted["rows_existing"] == first["rows_written"]
    assert Lake(tmp_path / "lake").scan("interactions").select(pl.len()).collect().item() == 2 * first["rows_written"]
    for path in day.iterdir():
        path.rename(path.with_name(path.name.replace("redelivered-", "again-")))
    deduped = run(True)
    assert deduped["rows_written"] == 0
    assert deduped["rows_quarantined"] == first["rows_written"] + first["rows_quarantined"]
    assert deduped["rows_existing"] == first["rows_written"]

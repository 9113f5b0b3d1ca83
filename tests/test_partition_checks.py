"""The GX checks on the day-partitioned `interactions` asset validate the materialized day only.

(That a suite fails on a bad row is tested in test_expectations; Dagster 1.13 cannot run a partitioned check
without its asset in `materialize`, so the bad row here sits in another day.)
"""

import datetime as dt

import polars as pl
from dagster import DagsterInstance, materialize

from assets import ingest as ingest_assets
from assets.partitions import add_days
from assets.quality import TABLE_CHECKS
from assets.resources import EngineResource, LakeResource, LandingResource, SparkResource
from lake import Lake

CHECKS = [c for c in TABLE_CHECKS if {k.asset_key.to_user_string() for k in c.check_keys} == {"interactions"}]


def _bad_row(day: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": ["u-bad"],
            "item_id": ["i-bad"],
            "behavior": ["teleport"],
            "event_ts": [dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)],
            "source": ["planted"],
            "run_id": ["planted"],
            "ds": [day],
        },
        schema_overrides={"event_ts": pl.Datetime("us", "UTC")},
    )


def _check_results(result) -> dict[str, dict]:
    return {
        e.asset_check_evaluation_data.check_name: {
            "passed": e.asset_check_evaluation_data.passed,
            **{k: v.value for k, v in e.asset_check_evaluation_data.metadata.items()},
        }
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_each_day_is_validated_on_its_own_rows(tmp_path, tiny_raw):
    resources = {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "landing": LandingResource(root=str(tiny_raw)),
        "engine": EngineResource(engine="polars"),
        "spark": SparkResource(),
    }
    instance = DagsterInstance.ephemeral()
    add_days(instance, ["2025-01-01", "2025-01-02"])
    assets = [ingest_assets.interactions, *CHECKS]
    assert materialize(assets, partition_key="2025-01-01", resources=resources, instance=instance).success
    lake = Lake(tmp_path / "lake")
    lake.append("interactions", _bad_row("2025-01-01"), run_id="planted")  # day 1 is now invalid
    second = materialize(assets, partition_key="2025-01-02", resources=resources, instance=instance)
    checks = _check_results(second)
    day2 = lake.scan("interactions").filter(pl.col("ds") == "2025-01-02").collect().height
    assert checks["interactions_expectations"]["passed"] and checks["interactions_expectations"]["rows"] == day2
    quarantine = checks["quarantine_expectations"]
    assert checks["interactions_expectations"]["partition"] == quarantine["partition"] == "2025-01-02"
    assert quarantine["passed"]
    assert lake.scan("interactions").collect().height > day2  # the invalid day-1 row is in the table, not this day

"""The gr_probe asset: off unless switched on; on, it records the probe's figures in the published build's metrics
and shows them beside the baselines; the same version and settings are not probed twice."""

from __future__ import annotations

from dagster import DagsterInstance, materialize

from assets.probe import gr_probe
from assets.resources import LakeResource
from builds.registry import BuildRegistry, BuildStatus
from ingest.run import ingest
from lake import Lake
from publish.training_data import publish_training_data

BUILD = "algr-item_sid_final"
ON = {"ops": {"gr_probe": {"config": {"enabled": True, "epochs": 1, "max_examples": 30}}}}


def _metadata(result) -> dict:
    event = result.asset_materializations_for_node("gr_probe")[0]
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def test_the_probe_asset_records_its_figures_once_and_only_when_switched_on(tmp_path, tiny_raw):
    lake = Lake(tmp_path / "lake")
    ingest(lake, [tiny_raw / "algr" / "origin_behavior"], "algr-sequences")
    ingest(lake, [tiny_raw / "algr" / "item_sid"], "algr-item-sid")
    registry = BuildRegistry(lake)
    registry.mark(registry.get(BUILD), BuildStatus.PUBLISHED)
    version = publish_training_data(lake, build_id=BUILD).published.path
    resources, instance = {"lake": LakeResource(root=str(tmp_path / "lake"))}, DagsterInstance.ephemeral()

    off = materialize([gr_probe], resources=resources, instance=instance)
    assert _metadata(off)["result"] == "off (config enabled: false)"
    assert "probe_hr_at_10" not in registry.get(BUILD).metrics

    on = materialize([gr_probe], resources=resources, instance=instance, run_config=ON)
    shown, recorded = _metadata(on), registry.get(BUILD).metrics
    assert shown["build_id"] == BUILD and shown["test_examples"] == 30 and recorded["probe_version"] == version
    for key in ("probe_hr_at_10", "probe_hr_at_10_random", "probe_hr_at_10_popularity", "probe_ndcg_at_10"):
        assert shown[key] == round(recorded[key], 6) and 0 <= recorded[key] <= 1
    assert "random SIDs" in shown["hit_rates"] and shown["result"].startswith("HR@10 ")
    logged = [e.message for e in instance.all_logs(on.run_id) if e.step_key == "gr_probe" and not e.is_dagster_event]
    assert "probe: training epochs: 1/1" in "\n".join(logged)  # the run page shows the epochs moving
    assert "probe random: training epochs: 1/1" in "\n".join(logged)

    builds_version = lake.version("sid_builds")
    again = materialize([gr_probe], resources=resources, instance=instance, run_config=ON)
    assert _metadata(again)["result"] == "already probed" and lake.version("sid_builds") == builds_version

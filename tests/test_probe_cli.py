"""`sidforge probe`: the GR probe on a build's newest published version, its figures printed and recorded in the
build's metrics; a build with nothing published is named, not a traceback."""

from __future__ import annotations

import json

from builds.registry import BuildRegistry
from ingest.run import ingest
from lake import Lake
from pipelines.cli import main
from publish.training_data import publish_training_data

BUILD = "algr-item_sid_final"


def test_probe_prints_and_records_the_figures_beside_the_baselines(tmp_path, tiny_raw, capsys):
    lake = Lake(tmp_path / "lake")
    ingest(lake, [tiny_raw / "algr" / "origin_behavior"], "algr-sequences")
    ingest(lake, [tiny_raw / "algr" / "item_sid"], "algr-item-sid")
    assert main(["probe", BUILD, "--lake", str(tmp_path / "lake")]) == 2
    assert "nothing was published" in capsys.readouterr().err

    version = publish_training_data(lake, build_id=BUILD).published
    args = ["probe", BUILD, "--lake", str(tmp_path / "lake"), "--epochs", "2", "--max-examples", "40", "--json"]
    assert main(args) == 0
    figures = json.loads(capsys.readouterr().out)
    for suffix in ("", "_random", "_popularity"):
        for key in ("hr_at_1", "hr_at_10", "hr_at_100", "ndcg_at_10"):
            assert 0 <= figures[f"probe_{key}{suffix}"] <= 1, key + suffix
    assert figures["probe_test_examples"] == 40 and figures["probe_version"] == version.path
    recorded = BuildRegistry(lake).get(BUILD).metrics
    assert {k: recorded[k] for k in figures} == figures

    assert main(["probe", BUILD, "--lake", str(tmp_path / "lake"), "--epochs", "1", "--max-examples", "10"]) == 0
    table = capsys.readouterr().out
    assert "random SIDs" in table and "HR@10" in table and "NDCG@10" in table

"""`sidforge probe`: the GR probe on a build's newest published version, its figures printed and recorded in the
build's metrics; a build with nothing published is named, not a traceback."""

from __future__ import annotations

import json

import pytest

from builds.registry import BuildRegistry
from ingest.run import ingest
from lake import Lake
from pipelines.cli import main
from publish.training_data import publish_training_data
from quality.gr_probe import ProbeConfig

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
    out, err = capsys.readouterr()
    figures = json.loads(out)
    assert "probe: training epochs: 2/2" in err  # progress on stderr, the figures alone on stdout
    assert figures.pop("recorded_as") == "probe"
    for suffix in ("", "_random", "_popularity"):
        for key in ("hr_at_1", "hr_at_10", "hr_at_100", "ndcg_at_10"):
            assert 0 <= figures[f"probe_{key}{suffix}"] <= 1, key + suffix
    assert figures["probe_test_examples"] == 40 and figures["probe_version"] == version.path
    recorded = BuildRegistry(lake).get(BUILD).metrics
    assert {k: recorded[k] for k in figures} == figures

    assert main(["probe", BUILD, "--lake", str(tmp_path / "lake"), "--epochs", "1", "--max-examples", "10"]) == 0
    table = capsys.readouterr().out
    assert "random SIDs" in table and "HR@10" in table and "NDCG@10" in table
    assert "kept beside it as probe_runs['epochs=1,max_examples=10']" in table
    kept = BuildRegistry(lake).get(BUILD).metrics
    assert {k: kept[k] for k in figures} == figures  # the weaker run did not overwrite the build's figures
    assert kept["probe_runs"]["epochs=1,max_examples=10"]["probe_test_examples"] == 10

    replace = ["probe", BUILD, "--lake", str(tmp_path / "lake"), "--epochs", "1", "--max-examples", "40"]
    assert main([*replace, "--replace", "--json"]) == 0
    replaced = json.loads(capsys.readouterr().out)
    assert replaced["recorded_as"] == "probe" and replaced["probe_config"]["epochs"] == 1
    assert BuildRegistry(lake).get(BUILD).metrics["probe_config"]["epochs"] == 1


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--epochs", "0", "1 or more"), ("--max-examples", "5", "below 10"), ("--max-examples", "x", "1 or more")],
)
def test_settings_that_measure_nothing_are_refused_with_the_option_named(option, value, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["probe", "b", "--lake", str(tmp_path), option, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {option}" in err and says in err


def test_the_library_config_names_a_bad_setting():
    for field, value in (("epochs", 0), ("max_examples", 3), ("learning_rate", 0.0), ("ks", ())):
        with pytest.raises(ValueError, match=f"probe setting {field} must"):
            ProbeConfig(**{field: value})

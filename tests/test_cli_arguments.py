"""Command-line values are checked before any work: each message names the option and the form it expects."""

import argparse

import pytest

from lake import Lake
from pipelines.cli import _parser, main
from publish.manifest import read_manifest


def _usage_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["ingest", "x.csv", "--format", "events", "--ds", "2025-13-01"],
            "argument --ds: '2025-13-01' is not a calendar day in the form YYYY-MM-DD",
        ),
        (
            ["ingest", "x.csv", "--format", "events", "--ds", "yesterday"],
            "argument --ds: 'yesterday' is not a calendar day in the form YYYY-MM-DD",
        ),
        (
            ["ingest", "x.csv", "--format", "events", "--ds", "2025-1-4"],
            "argument --ds: '2025-1-4' is not a calendar day in the form YYYY-MM-DD",
        ),
        (["publish", "--test-day", "2025/01/04"], "argument --test-day: '2025/01/04' is not a calendar day"),
        (["publish", "--rows-per-shard", "0"], "argument --rows-per-shard: '0' is not a whole number of 1 or more"),
        (
            ["export", "--format", "algr-tsv", "--out", "x", "--token-stride", "-8"],
            "argument --token-stride: '-8' is not a whole number of 1 or more",
        ),
        (
            ["vacuum", "--retention-hours", "-1"],
            "argument --retention-hours: '-1' is not a number of hours of 0 or more",
        ),
        (["vacuum", "--retention-hours", "nan"], "argument --retention-hours: 'nan' is not a number of hours"),
    ],
)
def test_malformed_values_name_the_option(argv, message, capsys):
    assert message in _usage_error(argv, capsys)


@pytest.mark.parametrize(
    "argv", [["tables"], ["report"], ["publish"], ["vacuum"], ["export", "--format", "sid-items", "--out", "x"]]
)
def test_read_commands_refuse_a_missing_lake(argv, tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main([*argv, "--lake", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"--lake {missing}: no lake at {missing}" in err
    assert not missing.exists()


@pytest.fixture(scope="module")
def event_lake(tmp_path_factory, tiny_raw):
    lake = tmp_path_factory.mktemp("cli") / "lake"
    assert main(["ingest", str(tiny_raw / "events"), "--format", "events", "--lake", str(lake)]) == 0
    assert (
        main(
            [
                "ingest",
                str(tiny_raw / "algr" / "item_sid"),
                "--format",
                "algr-item-sid",
                "--lake",
                str(lake),
                "--build-id",
                "ref",
            ]
        )
        == 0
    )
    return str(lake)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "--format", "algr-tsv", "--build", "nope"], "--build 'nope': no such SID build in"),
        (["export", "--format", "item-sid-csv", "--build", "nope"], "--build 'nope': no such SID build in"),
        (["export", "--format", "item-sid-csv"], "no published SID build in"),
        (["export", "--format", "algr-tsv"], "no published dataset 'gr' in"),
        (["export", "--format", "sid-items", "--version-path", "v"], "--version-path applies to --format algr-tsv"),
        (["report", "nope"], "BUILD_ID 'nope': no such SID build in"),
        (["report"], "no published SID build in"),
        (["publish", "--build", "nope"], "--build 'nope': no such SID build in"),
        (["publish", "--test-day", "2025-01-04"], "--test-day applies to --source interactions"),
    ],
)
def test_values_that_do_not_match_the_lake(event_lake, tmp_path, argv, message, capsys):
    out = ["--out", str(tmp_path / "out")] if argv[0] == "export" else []
    assert main([*argv, *out, "--lake", event_lake]) == 2
    err = capsys.readouterr().err
    assert message in err and "None" not in err
    assert not (tmp_path / "out").exists()


def test_a_test_day_without_events_is_refused(event_lake, capsys):
    argv = ["publish", "--lake", event_lake, "--build", "ref", "--source", "interactions"]
    assert main([*argv, "--test-day", "2030-01-01", "--test-day", "2025-01-02"]) == 2
    assert "test day 2030-01-01 holds no interactions in" in capsys.readouterr().err
    assert Lake(event_lake).scan("published_datasets").collect().height == 0
    assert main([*argv, "--test-day", "2025-01-02"]) == 0
    assert "published gr version" in capsys.readouterr().out
    path = Lake(event_lake).scan("published_datasets").collect()["path"].to_list()
    assert len(path) == 1 and read_manifest(Lake(event_lake).published_path(path[0]))["splits"]["test"]["examples"] > 0


def test_every_option_has_help():
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []
    assert set(commands.choices) == {
        "generate",
        "ingest",
        "tables",
        "publish",
        "export",
        "report",
        "vacuum",
        "probe",
        "demo",
        "dev",
    }


def test_version_names_the_installed_package(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"sidforge {version('sidforge')}"


def test_report_on_a_lake_without_builds_says_how_to_get_one(tmp_path, capsys):
    (tmp_path / "lake").mkdir()
    assert main(["report", "--lake", str(tmp_path / "lake")]) == 2
    err = capsys.readouterr().err
    assert "no SID build in" in err and "nightly_sid_rebuild" in err and "BUILD_ID BUILD_ID" not in err


def test_a_failed_ingest_into_a_new_lake_leaves_no_folder(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["ingest", str(bad), "--format", "events", "--lake", str(tmp_path / "new")]) == 2
    assert "no column for 'user_id'" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    assert main(["ingest", str(bad), "--format", "events", "--lake", str(tmp_path / "kept")]) == 2
    assert (tmp_path / "kept").is_dir()  # a folder that was there before stays

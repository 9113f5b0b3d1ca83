"""The `sidforge` command line: generate, ingest and tables without Dagster."""

import json

from pipelines.cli import main


def test_generate_ingest_and_list_tables(tmp_path, capsys):
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    assert main(["generate", "--scale", "tiny", "--seed", "1", "--out", str(raw)]) == 0
    assert main(["ingest", str(raw / "events"), "--format", "events", "--lake", str(lake), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert report["rows_read"] == report["rows_written"] > 0 and report["table"] == "interactions"
    assert (
        main(
            [
                "ingest",
                str(raw / "algr" / "item_sid"),
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
    assert main(["tables", "--lake", str(lake)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line and line.split()[0].isidentifier()}
    assert int(lines["interactions"][2].replace(",", "")) == report["rows_written"]
    assert int(lines["item_sids"][2].replace(",", "")) == 300
    assert lines["codebooks"][1] == "-"


def test_a_bad_path_is_a_clear_error(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "nope.csv"), "--format", "events", "--lake", str(tmp_path)]) == 2
    assert "nope.csv: no such file or folder" in capsys.readouterr().err

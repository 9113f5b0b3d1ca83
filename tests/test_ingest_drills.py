"""The write-identity drills as sequences of `sidforge` commands, on a local lake and on an s3:// lake, rows
counted by an independent reader (`pl.read_delta`): no command loses rows it was not asked to replace."""

from pathlib import Path

import polars as pl
import pytest

from pipelines.cli import main
from tests.helpers import write

HEADER = "user_id,item_id,behavior,timestamp\n"
DAY1 = 1735689600  # 2025-01-01T00:00:00Z
DAY2 = DAY1 + 86400


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path) -> str:
    """The lake location for the drill (an s3:// lake reads its endpoint and keys from AWS_*)."""
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"s3://{request.getfixturevalue('s3_bucket')}/lake"


def _rows(root: str, name: str, column: str) -> dict:
    frame = pl.read_delta(f"{root}/{name}")
    return dict(frame.group_by(column).len().sort(column).iter_rows())


def test_every_drill_keeps_the_rows_it_did_not_replace(where, tmp_path, tiny_raw, capsys):
    lake = where
    emb = tiny_raw / "algr" / "item_emb" / "item_emb_000.csv"
    emb_rows = len(emb.read_text().splitlines()) - 1
    for model in ("m1", "m2"):
        assert main(["ingest", str(emb), "--format", "algr-item-emb", "--model", model, "--lake", lake]) == 0
    assert _rows(where, "item_embeddings", "model") == {"m1": emb_rows, "m2": emb_rows}

    sids = tiny_raw / "algr" / "item_sid"
    for build in ("b1", "b2"):
        assert main(["ingest", str(sids), "--format", "algr-item-sid", "--build-id", build, "--lake", lake]) == 0
    counts = _rows(where, "item_sids", "build_id")
    assert set(counts) == {"b1", "b2"} and counts["b1"] == counts["b2"] > 0

    two_days = write(
        tmp_path / "two.csv",
        HEADER + "".join(f"a{n},i{n},pv,{DAY1 + n}\n" for n in range(50)) + f"b,i0,pv,{DAY2 + 1}\n",
    )
    for day in ("2025-01-01", "2025-01-02"):
        assert main(["ingest", str(two_days), "--format", "events", "--ds", day, "--lake", lake]) == 0
    assert _rows(where, "interactions", "ds") == {"2025-01-01": 50, "2025-01-02": 1}

    day2 = write(tmp_path / "day2.csv", HEADER + "".join(f"c{n},i{n},pv,{DAY2 + n}\n" for n in range(30)))
    assert main(["ingest", str(day2), "--format", "events", "--lake", lake]) == 0
    assert _rows(where, "interactions", "ds") == {"2025-01-01": 50, "2025-01-02": 31}
    capsys.readouterr()
    assert main(["ingest", str(two_days), "--format", "events", "--replace-partition", "--lake", lake]) == 2
    refused = capsys.readouterr().err
    assert "ds=2025-01-02 (1 of 51 rows)" in refused and "--replace-partition 2025-01-01" in refused
    dry = ["ingest", str(two_days), "--format", "events", "--replace-partition", "--dry-run", "--force"]
    assert main([*dry, "--lake", lake]) == 0
    plan = capsys.readouterr().out
    assert "ds=2025-01-01: add 50, remove 50" in plan and "ds=2025-01-02: add 1, remove 31" in plan
    assert _rows(where, "interactions", "ds") == {"2025-01-01": 50, "2025-01-02": 31}
    assert (
        main(["ingest", str(two_days), "--format", "events", "--replace-partition", "2025-01-01", "--lake", lake]) == 0
    )
    announced = capsys.readouterr()
    assert "emptying partition ds=2025-01-01 (50 rows)" in announced.err
    assert _rows(where, "interactions", "ds") == {"2025-01-01": 50, "2025-01-02": 31}, "b's --ds load replaced"

    again = write(tmp_path / "again.parquet", b"")
    pl.read_csv(day2).write_parquet(again)
    assert main(["ingest", str(again), "--format", "events", "--lake", lake]) == 0
    assert "30 of these rows already exist in the table" in capsys.readouterr().out
    assert _rows(where, "interactions", "ds") == {"2025-01-01": 50, "2025-01-02": 61}
    assert main(["ingest", str(again), "--format", "events", "--dedupe-against-table", "--lake", lake]) == 0
    assert "30 rows already in the table: quarantined" in capsys.readouterr().out
    assert _rows(where, "interactions", "ds") == {"2025-01-01": 50, "2025-01-02": 31}
    quarantined = _rows(where, "quarantine", "reason")
    assert quarantined["duplicate of existing row"] == 30


def test_a_partition_named_that_is_not_a_day_is_a_usage_error(tmp_path, capsys):
    path = write(tmp_path / "a.csv", HEADER + f"a,i,pv,{DAY1}\n")
    lake = str(tmp_path / "lake")
    assert main(["ingest", str(path), "--format", "events", "--replace-partition", "Jan 1", "--lake", lake]) == 2
    assert "ds must be a day" in capsys.readouterr().err
    assert not Path(lake, "interactions").exists() or pl.read_delta(f"{lake}/interactions").height == 0

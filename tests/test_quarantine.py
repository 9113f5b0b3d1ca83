"""Bad event records: each reason quarantined with file, line and raw text; nothing lost."""

import polars as pl
import pytest

from ingest.run import ingest
from ingest.sources.lines import SourceError
from lake import Lake
from tests.helpers import write

BAD_EVENTS = (
    b"user_id,item_id,behavior,timestamp\n"
    b"u1,a,pv,1735732800\n"  # 2 ok
    b"u2,b,buy,2025-01-01T10:00:00Z\n"  # 3 ok (ISO)
    b"u3,,pv,1735732800\n"  # 4 empty item id
    b",c,pv,1735732800\n"  # 5 empty user id
    b"u4,c,zap,1735732800\n"  # 6 unknown behavior
    b"u5,d,pv,notatime\n"  # 7 unparseable timestamp
    b"u6,e,pv\n"  # 8 wrong column count
    b"u7,f,pv,1735732800,extra\n"  # 9 wrong column count
    b"u8,g,pv,4102444800\n"  # 10 in 2100: out of range
    b"u9,h,pv,1735862400\n"  # 11 next day: outside partition
    b"u1,a,pv,1735732800\n"  # 12 duplicate of line 2
    b"\n"  # 13 blank: not a record
) + b"u10,\xff,pv,1735732800\n"  # 14 invalid UTF-8

EXPECTED = {
    4: "empty item_id",
    5: "empty user_id",
    6: "unknown behavior 'zap'",
    7: "unparseable timestamp",
    8: "expected 4 fields, found 3",
    9: "expected 4 fields, found 5",
    10: "out of range",
    11: "outside the partition day 2025-01-01",
    12: "duplicate record",
    14: "invalid UTF-8",
}


def test_each_bad_record_is_quarantined_with_its_reason(lake: Lake, tmp_path):
    path = write(tmp_path / "events.csv", BAD_EVENTS)
    report = ingest(lake, [path], "events", ds="2025-01-01", run_id="run-q")
    assert (report.rows_read, report.rows_written, report.rows_quarantined) == (12, 2, 10)
    assert report.blank_lines == 1
    q = lake.scan("quarantine").sort("line").collect()
    assert q["line"].to_list() == sorted(EXPECTED)
    for row in q.iter_rows(named=True):
        assert EXPECTED[row["line"]] in row["reason"], row
        assert row["source_file"] == str(path) and row["table"] == "interactions" and row["run_id"] == "run-q"
    assert q.filter(pl.col("line") == 6)["raw"].item() == "u4,c,zap,1735732800"
    assert lake.scan("interactions").collect()["user_id"].sort().to_list() == ["u1", "u2"]


def test_rerunning_a_file_replaces_its_quarantine_records(lake: Lake, tmp_path):
    path = write(tmp_path / "events.csv", BAD_EVENTS)
    ingest(lake, [path], "events", ds="2025-01-01")
    ingest(lake, [path], "events", ds="2025-01-01")
    assert lake.scan("quarantine").collect().height == 10
    assert lake.scan("interactions").collect().height == 2


def test_an_unreadable_file_names_itself(lake: Lake, tmp_path):
    with pytest.raises(SourceError, match=r"missing\.csv"):
        ingest(lake, [tmp_path / "missing.csv"], "events")
    no_header = write(tmp_path / "noheader.csv", "u1,a,pv,1735732800\n")
    with pytest.raises(SourceError, match=r"noheader.csv: no column for 'user_id'"):
        ingest(lake, [no_header], "events")
    empty = write(tmp_path / "empty.csv", "")
    with pytest.raises(SourceError, match=r"empty\.csv"):
        ingest(lake, [empty], "events")

"""Parquet inputs: event logs with typed or textual timestamps, and item catalogues with image bytes."""

import datetime as dt

import polars as pl

from ingest.run import ingest
from lake import Lake


def test_parquet_event_log_with_a_timestamp_column(lake: Lake, tmp_path):
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u1"],
            "item_id": ["a", "b", "", "a"],
            "behavior_type": ["pv", "buy", "pv", "pv"],
            "ts": [
                dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC),
                dt.datetime(2025, 1, 1, 9, tzinfo=dt.UTC),
                dt.datetime(2025, 1, 1, 9, tzinfo=dt.UTC),
                dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC),
            ],
        }
    ).write_parquet(path)
    report = ingest(lake, [path], "events", ds="2025-01-01")
    assert (report.rows_read, report.rows_written, report.rows_quarantined) == (4, 2, 2)
    rows = lake.scan("interactions").sort("user_id").collect()
    assert rows["event_ts"].to_list() == [
        dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC),
        dt.datetime(2025, 1, 1, 9, tzinfo=dt.UTC),
    ]
    q = lake.scan("quarantine").sort("line").collect()
    assert q["line"].to_list() == [3, 4]
    assert q["reason"][0] == "empty item_id" and q["reason"][1].startswith("duplicate record")
    assert '"user_id":"u3"' in q["raw"][0]


def test_parquet_epoch_milliseconds_become_utc_micros(lake: Lake, tmp_path):
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {"user_id": ["u1"], "item_id": ["a"], "behavior": ["cart"], "timestamp": [1_735_718_400_123]}
    ).write_parquet(path)
    ingest(lake, [path], "events")
    row = lake.scan("interactions").collect().row(0, named=True)
    assert row["event_ts"] == dt.datetime(2025, 1, 1, 8, 0, 0, 123_000, tzinfo=dt.UTC)
    assert row["ds"] == "2025-01-01"


def test_item_catalogue_merges_and_keeps_first_seen_day(lake: Lake, tmp_path):
    path = tmp_path / "items.parquet"
    pl.DataFrame(
        {"item_id": ["a", "b", "c"], "title": ["red mug", None, None], "image": [b"\x89PNG-a", b"\x89PNG-b", None]}
    ).write_parquet(path)
    first = ingest(lake, [path], "items", ds="2025-01-01")
    assert (first.rows_written, first.rows_quarantined) == (2, 1)
    assert lake.scan("quarantine").collect()["reason"].item() == "item has neither title nor image"
    pl.DataFrame(
        {"item_id": ["a", "d"], "title": ["blue mug", "lamp"], "image": [None, None]},
        schema_overrides={"image": pl.Binary},
    ).write_parquet(path)
    ingest(lake, [path], "items", ds="2025-01-05")
    items = lake.scan("items").sort("item_id").collect()
    assert items["item_id"].to_list() == ["a", "b", "d"]
    assert items["title"].to_list() == ["blue mug", None, "lamp"]
    assert items["first_seen_ds"].to_list() == ["2025-01-01", "2025-01-01", "2025-01-05"]
    hashes = dict(zip(items["item_id"], items["content_hash"], strict=True))
    assert len(set(hashes.values())) == 3

"""Lake writes: append, partition replace, merge by key, time travel, history, SQL and the summary."""

import datetime as dt

import polars as pl
import pytest

from lake import Lake


def _events(ds: str, users: list[str]) -> pl.DataFrame:
    ts = dt.datetime.fromisoformat(ds).replace(hour=12, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "user_id": users,
            "item_id": ["i1"] * len(users),
            "behavior": ["pv"] * len(users),
            "event_ts": [ts] * len(users),
            "source": ["lit"] * len(users),
            "run_id": ["r"] * len(users),
            "ds": [ds] * len(users),
        }
    )


def test_scan_of_a_missing_table_is_empty_with_schema(lake: Lake):
    frame = lake.scan("interactions").collect()
    assert frame.height == 0
    assert frame.schema["event_ts"] == pl.Datetime("us", "UTC")


def test_replace_partitions_is_idempotent_and_leaves_other_days(lake: Lake):
    lake.replace_partitions("interactions", _events("2025-01-01", ["a", "b"]), run_id="r1")
    lake.replace_partitions("interactions", _events("2025-01-02", ["c"]), run_id="r2")
    lake.replace_partitions("interactions", _events("2025-01-01", ["d"]), run_id="r3")
    lake.replace_partitions("interactions", _events("2025-01-01", ["d"]), run_id="r4")
    rows = lake.scan("interactions").sort("ds").collect()
    assert rows["user_id"].to_list() == ["d", "c"]


def test_commit_metadata_carries_run_id_and_sources(lake: Lake):
    lake.append("interactions", _events("2025-01-01", ["a"]), run_id="run-42", sources=["/x/events.csv"])
    latest = lake.history("interactions", 1).row(0, named=True)
    assert latest["run_id"] == "run-42"
    assert latest["sources"] == ["/x/events.csv"]
    assert isinstance(latest["timestamp"], dt.datetime) and latest["timestamp"].tzinfo is not None


def test_time_travel_reads_an_earlier_version(lake: Lake):
    v1 = lake.append("interactions", _events("2025-01-01", ["a"]), run_id="r1")
    lake.append("interactions", _events("2025-01-01", ["b"]), run_id="r2")
    assert lake.scan("interactions").collect().height == 2
    assert lake.scan("interactions", version=v1).collect()["user_id"].to_list() == ["a"]


def test_a_version_or_time_the_table_lacks_names_what_it_has(lake: Lake):
    lake.append("interactions", _events("2025-01-01", ["a"]), run_id="r1")
    newest = lake.append("interactions", _events("2025-01-01", ["b"]), run_id="r2")
    for version in (99, -1):
        with pytest.raises(ValueError, match=f"interactions has versions 0–{newest}; there is no version {version}"):
            lake.scan("interactions", version=version)
    with pytest.raises(ValueError, match=r"interactions was created at .* UTC, after 2000-01-01 00:00:00"):
        lake.scan("interactions", version=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    history = lake.history("interactions")
    assert history["version"].to_list() == list(range(newest, -1, -1))
    assert history.schema["timestamp"] == pl.Datetime("ms", "UTC")
    at = history.filter(pl.col("run_id") == "r1")["timestamp"][0]
    assert lake.scan("interactions", version=at).collect()["user_id"].to_list() == ["a"]


def test_merge_upserts_by_key(lake: Lake):
    def items(ids, titles):
        return pl.DataFrame(
            {
                "item_id": ids,
                "title": titles,
                "category": None,
                "image": None,
                "image_uri": None,
                "content_hash": ["h"] * len(ids),
                "first_seen_ds": None,
                "source": "lit",
                "run_id": "r",
            },
            schema_overrides={
                "image": pl.Binary,
                "category": pl.String,
                "image_uri": pl.String,
                "first_seen_ds": pl.String,
            },
        )

    lake.merge("items", items(["a", "b"], ["A", "B"]), run_id="r1")
    lake.merge("items", items(["b", "c"], ["B2", "C"]), run_id="r2")
    rows = lake.scan("items").sort("item_id").collect()
    assert rows["title"].to_list() == ["A", "B2", "C"]


def test_sql_and_summary_see_every_table(lake: Lake):
    lake.append("interactions", _events("2025-01-01", ["a", "b", "c"]), run_id="r")
    counted = lake.sql("SELECT ds, COUNT(*) AS n FROM interactions GROUP BY ds")
    assert counted.rows() == [("2025-01-01", 3)]
    summary = {r["table"]: r for r in lake.tables().iter_rows(named=True)}
    assert summary["interactions"]["rows"] == 3 and summary["interactions"]["bytes"] > 0
    assert summary["items"]["version"] is None and summary["items"]["rows"] == 0


def test_conform_rejects_missing_columns(lake: Lake):
    with pytest.raises(ValueError, match="lacks columns"):
        lake.append("interactions", pl.DataFrame({"user_id": ["a"]}), run_id="r")


def test_analyst_first_five_minutes(lake: Lake, tiny_raw):
    from ingest.run import ingest

    ingest(lake, [tiny_raw / "events"], "events")
    buys = Lake(lake.root).scan("interactions").filter(pl.col("behavior") == "buy").collect()
    assert buys.height > 0 and set(buys["behavior"]) == {"buy"}

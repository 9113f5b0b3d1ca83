"""The Spark bridge: externally written Parquet committed to Delta once, with footer statistics."""

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from lake import Lake, table


def _stage(lake: Lake, run: str, ds: str, users: list[str]) -> str:
    spec = table("interactions")
    frame = pl.DataFrame(
        {
            "user_id": users,
            "item_id": ["i"] * len(users),
            "behavior": ["pv"] * len(users),
            "event_ts": [1735732800_000_000 + i for i in range(len(users))],
            "source": "s",
            "run_id": run,
        }
    ).with_columns(pl.col("event_ts").cast(pl.Datetime("us", "UTC")))
    folder = Path(lake.root, "_staging", "interactions", run, f"ds={ds}")
    folder.mkdir(parents=True, exist_ok=True)
    path = f"{folder}/part-00000.parquet"
    pq.write_table(frame.select(spec.data_columns).to_arrow(), path)
    return path


def test_staged_files_are_moved_and_committed_with_stats(lake: Lake):
    path = _stage(lake, "r1", "2025-01-01", ["b", "a", "c"])
    version = lake.commit_files("interactions", [path], run_id="r1", app_id="test-r1")
    files = lake.files("interactions")
    assert files.height == 1 and files["partition.ds"][0] == "2025-01-01"
    assert files["num_records"][0] == 3
    assert files["min.user_id"][0] == "a" and files["max.user_id"][0] == "c"
    assert lake.scan("interactions").collect()["ds"].to_list() == ["2025-01-01"] * 3
    assert lake.history("interactions", 1)["version"][0] == version


def test_a_retried_commit_is_applied_once(lake: Lake):
    path = _stage(lake, "r1", "2025-01-01", ["a", "b"])
    first = lake.commit_files("interactions", [path], run_id="r1", app_id="ingest-r1")
    again = lake.commit_files("interactions", [path], run_id="r1", app_id="ingest-r1")
    assert again == first
    assert lake.scan("interactions").collect().height == 2


def test_replace_removes_the_partitions_old_files_in_the_same_commit(lake: Lake):
    lake.commit_files("interactions", [_stage(lake, "r1", "2025-01-01", ["a", "b"])], run_id="r1")
    lake.commit_files("interactions", [_stage(lake, "r2", "2025-01-02", ["x"])], run_id="r2")
    lake.commit_files(
        "interactions", [_stage(lake, "r3", "2025-01-01", ["c"])], run_id="r3", replace=[{"ds": "2025-01-01"}]
    )
    rows = lake.scan("interactions").sort("ds").collect()
    assert rows["user_id"].to_list() == ["c", "x"]
    last = lake.history("interactions", 1).row(0, named=True)
    assert last["run_id"] == "r3" and last["sources"] == []

"""Ingest is idempotent per partition and accounts for every record."""

import polars as pl

from ingest.run import ingest
from lake import Lake


def test_rerunning_a_day_replaces_it(lake: Lake, tiny_raw):
    day = tiny_raw / "events" / "ds=2025-01-02"
    first = ingest(lake, [day], "events", ds="2025-01-02")
    second = ingest(lake, [day], "events", ds="2025-01-02")
    assert second.version == first.version + 1
    rows = lake.scan("interactions").collect()
    assert rows.height == first.rows_written == second.rows_written
    assert rows["ds"].unique().to_list() == ["2025-01-02"]
    assert rows["run_id"].unique().to_list() == [second.run_id]
    assert rows.select(pl.struct("user_id", "item_id", "behavior", "event_ts").is_unique().all()).item()


def test_days_accumulate_and_counts_add_up(lake: Lake, tiny_raw):
    reports = [
        ingest(lake, [tiny_raw / "events" / f"ds=2025-01-0{d}"], "events", ds=f"2025-01-0{d}") for d in (1, 2, 3, 4)
    ]
    for r in reports:
        assert r.rows_read == r.rows_written + r.rows_quarantined
    total = lake.scan("interactions").select(pl.len()).collect().item()
    assert total == sum(r.rows_written for r in reports)
    raw_lines = sum(len(p.read_text().splitlines()) - 1 for p in (tiny_raw / "events").rglob("*.csv"))
    assert total == raw_lines
    runs = lake.history("interactions")["run_id"].drop_nulls()
    assert runs.len() and runs.str.starts_with("cli-").all()


def test_item_pairs_count_consecutive_items(lake: Lake, tmp_path):
    from ingest.pairs import item_pairs
    from tests.helpers import write

    path = write(tmp_path / "s1.csv", "user_history,target_item\nb;a,c\nb;a,c\nc,a\n")
    ingest(lake, [path], "algr-sequences")
    pairs = item_pairs(lake.scan("user_sequences")).collect()
    assert pairs.rows() == [("a", "b", 2.0), ("b", "c", 2.0), ("c", "a", 1.0)]

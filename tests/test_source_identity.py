"""A source's identity is its format, its path and what the call writes it to (model, build, --ds): reruns of one
identity replace what it wrote, other identities of the same file keep their rows."""

import polars as pl
import pytest

from ingest.run import ingest
from lake import Lake
from tests.helpers import write

HEADER = "user_id,item_id,behavior,timestamp\n"
DAY1 = 1735689600  # 2025-01-01T00:00:00Z
DAY2 = DAY1 + 86400


def _two_days(path, first: int, second: int):
    rows = [f"a{n},i{n},pv,{DAY1 + n}\n" for n in range(first)] + [f"b{n},i{n},pv,{DAY2 + n}\n" for n in range(second)]
    return write(path, HEADER + "".join(rows))


def _count(lake: Lake, name: str, column: str) -> dict:
    frame = pl.read_delta(lake.uri(name)) if lake.exists(name) else pl.DataFrame({column: []})
    return dict(frame.group_by(column).len().sort(column).iter_rows())


def _emb_file(tmp_path, tiny_raw, rows: int = 30):
    lines = (tiny_raw / "algr" / "item_emb" / "item_emb_000.csv").read_text().splitlines()
    return write(tmp_path / "emb.csv", "\n".join(lines[: rows + 1]) + "\n")


def test_one_embeddings_file_under_two_models_keeps_both(lake: Lake, tmp_path, tiny_raw):
    path = _emb_file(tmp_path, tiny_raw)
    ingest(lake, [path], "algr-item-emb", model="m1")
    second = ingest(lake, [path], "algr-item-emb", model="m2")
    assert second.rows_replaced == 0
    assert _count(lake, "item_embeddings", "model") == {"m1": 30, "m2": 30}
    again = ingest(lake, [path], "algr-item-emb", model="m1")
    assert again.rows_replaced == 30
    assert _count(lake, "item_embeddings", "model") == {"m1": 30, "m2": 30}


def test_one_sid_file_as_two_builds_keeps_both(lake: Lake, tmp_path):
    from builds.registry import BuildRegistry

    path = write(tmp_path / "sids.csv", "item_id,codebook_lv1,codebook_lv2,codebook_lv3\n" + "x,1,2,3\ny,1,2,4\n")
    ingest(lake, [path], "algr-item-sid", build_id="b1")
    ingest(lake, [path], "algr-item-sid", build_id="b2")
    assert _count(lake, "item_sids", "build_id") == {"b1": 2, "b2": 2}
    assert {b.build_id for b in BuildRegistry(lake).all()} == {"b1", "b2"}


def test_a_multi_day_file_loaded_day_by_day_keeps_both_days(lake: Lake, tmp_path):
    path = _two_days(tmp_path / "two.csv", 7, 5)
    ingest(lake, [path], "events", ds="2025-01-01")
    second = ingest(lake, [path], "events", ds="2025-01-02")
    assert second.rows_replaced == 0
    assert _count(lake, "interactions", "ds") == {"2025-01-01": 7, "2025-01-02": 5}
    again = ingest(lake, [path], "events", ds="2025-01-01")
    assert again.rows_replaced == 7
    assert _count(lake, "interactions", "ds") == {"2025-01-01": 7, "2025-01-02": 5}


def test_a_whole_file_load_and_a_day_load_of_it_replace_each_other_in_that_day(lake: Lake, tmp_path):
    path = _two_days(tmp_path / "two.csv", 7, 5)
    ingest(lake, [path], "events")
    day = ingest(lake, [path], "events", ds="2025-01-02")
    assert day.rows_replaced == 5
    assert _count(lake, "interactions", "ds") == {"2025-01-01": 7, "2025-01-02": 5}
    whole = ingest(lake, [path], "events")
    assert whole.rows_replaced == 12
    assert _count(lake, "interactions", "ds") == {"2025-01-01": 7, "2025-01-02": 5}


def test_files_keyed_by_path_alone_are_replaced_only_in_the_partitions_written(
    lake: Lake, tmp_path, tiny_raw, monkeypatch
):
    """A lake written before identities had targets: its files carry the key of format and path alone."""
    import ingest.run
    from lake.provenance import source_key

    path = _emb_file(tmp_path, tiny_raw)
    with monkeypatch.context() as before:
        before.setattr(ingest.run, "source_key", lambda fmt, location, target=None: source_key(fmt, location))
        ingest.run.ingest(lake, [path], "algr-item-emb", model="m1")
    legacy = source_key("algr-item-emb", str(path))
    assert [f"src{legacy}-" in p for p in lake.files("item_embeddings")["path"]] == [True]
    other = ingest.run.ingest(lake, [path], "algr-item-emb", model="m2")
    assert other.rows_replaced == 0
    same = ingest.run.ingest(lake, [path], "algr-item-emb", model="m1")
    assert same.rows_replaced == 30
    assert _count(lake, "item_embeddings", "model") == {"m1": 30, "m2": 30}
    assert not any(f"src{legacy}-" in p for p in lake.files("item_embeddings")["path"])


def test_replace_partition_refuses_a_day_the_input_barely_touches(lake: Lake, tmp_path):
    from ingest.plan import ReplaceRefused

    ingest(lake, [_two_days(tmp_path / "day2.csv", 0, 40)], "events")
    stray = _two_days(tmp_path / "day1.csv", 60, 1)
    with pytest.raises(ReplaceRefused, match=r"ds=2025-01-02.*1 of 61"):
        ingest(lake, [stray], "events", replace_partition=True)
    assert _count(lake, "interactions", "ds") == {"2025-01-02": 40}
    assert not [p for p in (tmp_path / "lake" / "_staging").rglob("*") if p.is_file()]
    named = ingest(lake, [stray], "events", replace_partition=["2025-01-01"])
    assert named.replaced_partitions == [{"ds": "2025-01-01"}]
    assert _count(lake, "interactions", "ds") == {"2025-01-01": 60, "2025-01-02": 41}
    forced = ingest(lake, [stray], "events", replace_partition=True, force=True)
    assert forced.replaced_partitions == [{"ds": "2025-01-01"}, {"ds": "2025-01-02"}]
    assert _count(lake, "interactions", "ds") == {"2025-01-01": 60, "2025-01-02": 1}


def test_a_dry_run_prints_the_plan_and_commits_nothing(lake: Lake, tmp_path):
    ingest(lake, [_two_days(tmp_path / "old.csv", 3, 4)], "events")
    before = lake.version("interactions")
    path = _two_days(tmp_path / "new.csv", 10, 2)
    plan = ingest(lake, [path], "events", replace_partition=True, force=True, dry_run=True)
    assert lake.version("interactions") == before
    assert plan.version is None and plan.dry_run
    assert plan.plan == [
        {"partition": {"ds": "2025-01-01"}, "add": 10, "remove": 3},
        {"partition": {"ds": "2025-01-02"}, "add": 2, "remove": 4},
    ]
    assert _count(lake, "interactions", "ds") == {"2025-01-01": 3, "2025-01-02": 4}
    assert not [p for p in (tmp_path / "lake" / "_staging").rglob("*") if p.is_file()]


def test_events_delivered_twice_are_counted_and_dropped_on_request(lake: Lake, tmp_path):
    first = _two_days(tmp_path / "a.csv", 6, 0)
    ingest(lake, [first], "events")
    again = write(tmp_path / "b.csv", first.read_text() + f"new,i9,pv,{DAY1 + 99}\n")
    counted = ingest(lake, [again], "events", dry_run=True)
    assert counted.rows_existing == 6
    deduped = ingest(lake, [again], "events", dedupe_against_table=True)
    assert (deduped.rows_read, deduped.rows_written, deduped.rows_quarantined) == (7, 1, 6)
    assert deduped.rows_existing == 6
    assert _count(lake, "interactions", "ds") == {"2025-01-01": 7}
    reasons = lake.scan("quarantine").filter(pl.col("run_id") == deduped.run_id).collect()
    assert reasons["reason"].unique().to_list() == ["duplicate of existing row"]
    assert sorted(reasons["source_file"].unique()) == [str(again)]
    rerun = ingest(lake, [again], "events", dedupe_against_table=True)
    assert (rerun.rows_written, rerun.rows_quarantined) == (1, 6), "its own earlier rows are not duplicates"
    assert _count(lake, "interactions", "ds") == {"2025-01-01": 7}

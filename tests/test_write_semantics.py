"""Ingest replaces exactly what an input wrote before: never another file's rows, never a whole day unasked."""

import polars as pl
import pytest

from ingest.run import ingest
from lake import Lake
from tests.helpers import write

HEADER = "user_id,item_id,behavior,timestamp\n"
DAY1 = 1735689600  # 2025-01-01T00:00:00Z
DAY2 = DAY1 + 86400


def _events(path, users, start):
    return write(path, HEADER + "".join(f"{u},i{n},pv,{start + n}\n" for n, u in enumerate(users)))


def _day(lake: Lake, ds: str) -> pl.DataFrame:
    return lake.scan("interactions").filter(pl.col("ds") == ds).collect()


def test_algr_sequences_and_gr_data_live_side_by_side(lake: Lake, tiny_raw):
    algr = tiny_raw / "algr"
    seq = ingest(lake, [algr / "origin_behavior"], "algr-sequences")
    gr = ingest(lake, [algr / "train_data", algr / "test_data"], "algr-gr-tsv")
    spaces = lake.scan("user_sequences").group_by("id_space").len().collect()
    assert dict(spaces.iter_rows()) == {"item": seq.rows_written, "sid": gr.rows_written}


def test_a_stray_event_lands_in_its_own_day_without_touching_the_rest(lake: Lake, tmp_path):
    day1 = ingest(lake, [_events(tmp_path / "d1.csv", [f"u{i}" for i in range(20)], DAY1)], "events", ds="2025-01-01")
    stray = write(
        tmp_path / "d2.csv", HEADER + f"x,i0,pv,{DAY1 + 5}\n" + "".join(f"v{i},i{i},pv,{DAY2 + i}\n" for i in range(10))
    )
    second = ingest(lake, [stray], "events")
    assert _day(lake, "2025-01-01").height == day1.rows_written + 1
    assert _day(lake, "2025-01-02").height == 10
    assert second.rows_replaced == 0


def test_a_stray_event_is_quarantined_with_ds(lake: Lake, tmp_path):
    ingest(lake, [_events(tmp_path / "d1.csv", ["a", "b"], DAY1)], "events", ds="2025-01-01")
    stray = write(tmp_path / "d2.csv", HEADER + f"x,i0,pv,{DAY1 + 5}\ny,i1,pv,{DAY2 + 1}\n")
    report = ingest(lake, [stray], "events", ds="2025-01-02")
    assert report.rows_quarantined == 1
    assert _day(lake, "2025-01-01").height == 2 and _day(lake, "2025-01-02").height == 1


def test_a_days_files_may_arrive_in_several_calls(lake: Lake, tmp_path):
    part1 = _events(tmp_path / "part1.csv", ["a", "b", "c"], DAY1)
    part2 = _events(tmp_path / "part2.csv", ["d", "e"], DAY1 + 100)
    ingest(lake, [part1, part2], "events", ds="2025-01-01")
    again = ingest(lake, [part2], "events", ds="2025-01-01")
    assert sorted(_day(lake, "2025-01-01")["user_id"]) == ["a", "b", "c", "d", "e"]
    assert again.rows_replaced == 2


def test_rerunning_a_changed_file_replaces_only_its_rows(lake: Lake, tmp_path):
    ingest(lake, [_events(tmp_path / "a.csv", ["a", "b"], DAY1)], "events", ds="2025-01-01")
    ingest(lake, [_events(tmp_path / "b.csv", ["c"], DAY1 + 50)], "events", ds="2025-01-01")
    ingest(lake, [_events(tmp_path / "b.csv", ["c", "d"], DAY1 + 50)], "events", ds="2025-01-01")
    assert sorted(_day(lake, "2025-01-01")["user_id"]) == ["a", "b", "c", "d"]


def test_the_same_file_by_another_path_spelling_is_one_source(lake: Lake, tmp_path, monkeypatch):
    path = _events(tmp_path / "a.csv", ["a", "b"], DAY1)
    ingest(lake, [path], "events", ds="2025-01-01")
    monkeypatch.chdir(tmp_path)
    ingest(lake, ["./a.csv"], "events", ds="2025-01-01")
    assert _day(lake, "2025-01-01").height == 2


def test_a_header_only_file_removes_nothing(lake: Lake, tmp_path):
    full = ingest(lake, [_events(tmp_path / "a.csv", ["a", "b", "c"], DAY1)], "events", ds="2025-01-01")
    empty = ingest(lake, [write(tmp_path / "empty.csv", HEADER)], "events", ds="2025-01-01")
    assert (empty.rows_read, empty.rows_replaced) == (0, 0)
    assert _day(lake, "2025-01-01").height == full.rows_written


def test_replacing_a_whole_partition_only_when_asked(lake: Lake, tmp_path):
    ingest(lake, [_events(tmp_path / "a.csv", ["a", "b", "c"], DAY1)], "events", ds="2025-01-01")
    ingest(lake, [_events(tmp_path / "b.csv", ["x"], DAY2)], "events", ds="2025-01-02")
    report = ingest(lake, [_events(tmp_path / "c.csv", ["z"], DAY1)], "events", ds="2025-01-01", replace_partition=True)
    assert _day(lake, "2025-01-01")["user_id"].to_list() == ["z"]
    assert _day(lake, "2025-01-02").height == 1
    assert report.rows_replaced == 3 and report.partitions == [{"ds": "2025-01-01"}]


def test_item_embedding_files_accumulate(lake: Lake, tmp_path, tiny_raw):
    source = (tiny_raw / "algr" / "item_emb" / "item_emb_000.csv").read_text().splitlines()
    first = write(tmp_path / "item_emb_000.csv", "\n".join(source[:101]) + "\n")
    second = write(tmp_path / "item_emb_001.csv", "\n".join([source[0], *source[101:]]) + "\n")
    ingest(lake, [first], "algr-item-emb")
    ingest(lake, [second], "algr-item-emb")
    assert lake.scan("item_embeddings").select(pl.len()).collect().item() == len(source) - 1


@pytest.mark.parametrize("replace", [False, True])
def test_cli_says_what_a_rerun_replaced(tmp_path, replace, capsys):
    from pipelines.cli import main

    path = _events(tmp_path / "a.csv", ["a", "b"], DAY1)
    args = [str(path), "--format", "events", "--lake", str(tmp_path / "lake"), "--ds", "2025-01-01"]
    assert main(["ingest", *args]) == 0
    assert main(["ingest", *args, *(["--replace-partition"] if replace else [])]) == 0
    out = capsys.readouterr().out.splitlines()[-1]
    assert ("replaced 2 rows" in out) and (("partition ds=2025-01-01" in out) == replace)


def test_a_rerun_whose_rows_are_all_rejected_keeps_what_it_wrote(lake: Lake, tmp_path):
    path = _events(tmp_path / "a.csv", ["a", "b"], DAY1)
    ingest(lake, [path], "events", ds="2025-01-01")
    wrong = ingest(lake, [path], "events", ds="2025-01-02")
    assert (wrong.rows_quarantined, wrong.rows_replaced, wrong.empty_inputs) == (2, 0, [str(path)])
    assert _day(lake, "2025-01-01").height == 2


def test_a_file_that_fails_leaves_nothing_staged(lake: Lake, tmp_path):
    from ingest.sources.lines import SourceError

    with pytest.raises(SourceError, match="duplicate column"):
        ingest(lake, [write(tmp_path / "dup.csv", "user_id,user_id,item_id,behavior,timestamp\n")], "events")
    staging = [p for p in (tmp_path / "lake" / "_staging").rglob("*") if p.is_file()]
    assert staging == []

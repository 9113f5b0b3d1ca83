"""The Spark engine produces exactly the polars engine's tables, and a killed Spark ingest commits nothing."""

import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from ingest.run import ingest
from lake import Lake
from tests.helpers import write

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def _same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.schema == b.select(a.columns).schema
    keys = [c for c, t in a.schema.items() if not isinstance(t, pl.List) and c != "run_id"]
    left, right = a.drop("run_id").sort(keys), b.select(a.columns).drop("run_id").sort(keys)
    assert left.equals(right)


@pytest.mark.parametrize(
    ("fmt", "rel"),
    [
        ("events", "events"),
        ("algr-sequences", "algr/origin_behavior"),
        ("algr-item-emb", "algr/item_emb"),
        ("items", "items/items.csv"),
    ],
)
def test_engines_write_identical_tables(spark, tmp_path, tiny_raw, fmt, rel):
    polars_lake, spark_lake = Lake(tmp_path / "p"), Lake(tmp_path / "s")
    a = ingest(polars_lake, [tiny_raw / rel], fmt, engine="polars")
    b = ingest(spark_lake, [tiny_raw / rel], fmt, engine="spark")
    assert (a.rows_read, a.rows_written, a.rows_quarantined) == (b.rows_read, b.rows_written, b.rows_quarantined)
    assert a.partitions == b.partitions
    _same(polars_lake.scan(a.table).collect(), spark_lake.scan(b.table).collect())


def test_engines_quarantine_the_same_records(spark, tmp_path):
    day1 = write(
        tmp_path / "in" / "a.csv",
        "user_id,item_id,behavior,timestamp\nu1,a,pv,1735732800\n"
        "u2,,pv,1735732800\nu1,a,pv,1735732800\nu3,b,buy,1735732801,x\n",
    )
    write(tmp_path / "in" / "b.csv", "user_id,item_id,behavior,timestamp\nu1,a,pv,1735732800\nu4,c,fav,1735732802\n")
    polars_lake, spark_lake = Lake(tmp_path / "p"), Lake(tmp_path / "s")
    a = ingest(polars_lake, [day1.parent], "events", ds="2025-01-01")
    b = ingest(spark_lake, [day1.parent], "events", ds="2025-01-01", engine="spark")
    assert (a.rows_written, a.rows_quarantined) == (b.rows_written, b.rows_quarantined) == (2, 4)
    cols = ["source_file", "line", "raw", "reason", "table", "ds"]
    qa = polars_lake.scan("quarantine").select(cols).sort("source_file", "line").collect()
    qb = spark_lake.scan("quarantine").select(cols).sort("source_file", "line").collect()
    assert qa.equals(qb)
    assert (
        qa.filter(pl.col("reason").str.starts_with("duplicate"))["raw"].to_list()
        == ["u1,a,pv,2025-01-01T12:00:00.000000Z"] * 2
    )
    _same(polars_lake.scan("interactions").collect(), spark_lake.scan("interactions").collect())


def test_a_file_read_in_spans_by_several_tasks_gives_the_same_tables(spark, tmp_path, tiny_raw, monkeypatch):
    from ingest import spark_engine
    from ingest.sources.lines import split_lines

    day = sorted((tiny_raw / "events").iterdir())[0]
    header, *rows = (next(day.iterdir())).read_text().splitlines()
    planted = [rows[0], "u9,i9,teleport,1735732800", "u9,,pv,1735732801"]  # a duplicate of line 2, two bad rows
    path = write(tmp_path / "in" / "events.csv", "\n".join([header, *rows, *planted]) + "\n")
    monkeypatch.setattr(spark_engine, "SPLIT_BYTES", path.stat().st_size // 3)
    polars_lake, spark_lake = Lake(tmp_path / "p"), Lake(tmp_path / "s")
    a = ingest(polars_lake, [path], "events")
    b = ingest(spark_lake, [path], "events", engine="spark")
    assert (a.rows_read, a.rows_written, a.rows_quarantined) == (b.rows_read, b.rows_written, b.rows_quarantined)
    assert a.rows_quarantined == 3
    cols = ["source_file", "line", "raw", "reason", "table", "ds"]
    qa = polars_lake.scan("quarantine").select(cols).sort("line").collect()
    assert qa.equals(spark_lake.scan("quarantine").select(cols).sort("line").collect())
    assert qa["line"].to_list() == [len(rows) + 2, len(rows) + 3, len(rows) + 4]
    _same(polars_lake.scan("interactions").collect(), spark_lake.scan("interactions").collect())
    assert len(split_lines(path, spark.sparkContext.defaultParallelism, spark_engine.SPLIT_BYTES)) == 2


def _cli(lake: Lake, events) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "ingest",
        str(events),
        "--format",
        "events",
        "--engine",
        "spark",
        "--lake",
        lake.root,
    ]


def test_a_killed_spark_ingest_leaves_nothing_visible_and_a_rerun_commits_once(spark, tmp_path, tiny_raw):
    lake = Lake(tmp_path / "lake")
    staging = tmp_path / "lake" / "_staging" / "interactions"
    env = {**os.environ, "SIDFORGE_HOLD_AT": f"after-staging={tmp_path / 'never'}"}  # staged, then held there
    proc = subprocess.Popen(
        _cli(lake, tiny_raw / "events"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 900  # generous: waits for an event, however busy the machine
        while not (staging.exists() and any(staging.rglob("*.parquet"))):
            assert proc.poll() is None, "the ingest ended before it staged its rows"
            assert time.monotonic() < deadline, "Spark never staged its rows"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert lake.scan("interactions").collect().height == 0
    ingest(lake, [tiny_raw / "events"], "events", engine="spark")  # the rerun, on the worker's Spark session
    expected = sum(len(p.read_text().splitlines()) - 1 for p in (tiny_raw / "events").rglob("*.csv"))
    assert lake.scan("interactions").collect().height == expected
    writes = lake.history("interactions").filter(pl.col("operation") != "CREATE TABLE").to_dicts()
    assert len(writes) == 1


def test_a_relative_path_with_bad_rows_commits_data_and_quarantine(spark, tmp_path, monkeypatch):
    write(tmp_path / "in" / "day.csv", "user_id,item_id,behavior,timestamp\nu1,a,pv,1735732800\nu2,b,pv,never\n")
    monkeypatch.chdir(tmp_path)
    lake = Lake(tmp_path / "lake")
    report = ingest(lake, ["in/day.csv"], "events", engine="spark")
    assert (report.rows_written, report.rows_quarantined) == (1, 1)
    again = ingest(lake, ["./in/../in/day.csv"], "events", engine="spark")
    assert again.rows_replaced == 1
    quarantine = lake.scan("quarantine").collect()
    assert quarantine["source_file"].to_list() == [str(tmp_path / "in" / "day.csv")]
    assert lake.scan("interactions").collect().height == 1


def test_a_wrong_ds_quarantines_every_row_and_keeps_the_day(spark, tmp_path, tiny_raw):
    lake = Lake(tmp_path / "lake")
    day = tiny_raw / "events" / "ds=2025-01-01"
    first = ingest(lake, [day], "events", ds="2025-01-01", engine="spark")
    wrong = ingest(lake, [day], "events", ds="2025-01-02", engine="spark")
    assert wrong.rows_written == 0 and wrong.rows_quarantined == first.rows_read
    assert lake.scan("interactions").collect().height == first.rows_written
    assert lake.scan("quarantine").filter(pl.col("ds") == "2025-01-02").collect().height == first.rows_read


def _listening(pid: int) -> list[str]:
    """Local addresses of the TCP sockets process `pid` listens on (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}") if os.path.islink(f"/proc/{pid}/fd/{fd}") else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address = bytes.fromhex(fields[1].split(":")[0])
                found.append(".".join(str(b) for b in address[::-1]) if table == "tcp" else address.hex())
    return found


def test_local_mode_listens_on_loopback_only(spark):
    pid = spark.sparkContext._gateway.proc.pid
    addresses = _listening(pid)
    loopback = {"127.0.0.1", "0000000000000000ffff00000100007f", "00000000000000000000000001000000"}
    assert addresses and set(addresses) <= loopback, addresses


def test_spark_quarantines_a_bomb_whole_and_names_a_truncated_file(spark, tmp_path):
    import gzip

    from ingest.sources.limits import Limits
    from ingest.sources.lines import SourceError

    body = ("user_id,item_id,behavior,timestamp\n" + "u,i,pv,1735732800\n" * 200_000).encode()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bomb.csv.gz").write_bytes(gzip.compress(body))
    write(tmp_path / "in" / "fine.csv", "user_id,item_id,behavior,timestamp\nu1,a,pv,1735732800\n")
    lake = Lake(tmp_path / "lake")
    small = Limits(max_inflate_ratio=50, ratio_floor=1 << 16)
    report = ingest(lake, [tmp_path / "in"], "events", engine="spark", limits=small)
    assert (report.rows_read, report.rows_written, report.rows_quarantined) == (2, 1, 1)
    assert "inflates" in lake.scan("quarantine").collect()["reason"][0]
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(body)[:200])
    with pytest.raises(SourceError, match=r"cut\.csv\.gz"):
        ingest(lake, [cut], "events", engine="spark")

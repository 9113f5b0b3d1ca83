"""Hostile and degenerate files: bounded memory and time, a clear error naming the file, nothing lost."""

import gzip
import io
import zipfile

import numpy as np
import polars as pl
import pytest

from ingest.run import ingest
from ingest.sources.limits import Limits
from ingest.sources.lines import SourceError
from lake import Lake
from tests.helpers import write

HEADER = "user_id,item_id,behavior,timestamp\n"
SMALL = Limits(max_record_bytes=1 << 16, max_inflate_ratio=50, ratio_floor=1 << 16)
GR_HEADER = "id\tsystem\tuser\tanswer\n"


def _quarantine(lake: Lake) -> pl.DataFrame:
    return lake.scan("quarantine").sort("line").collect()


def test_a_file_whose_every_row_is_rejected(lake: Lake, tmp_path):
    path = write(tmp_path / "bad.csv", HEADER + "u,i,jump,1735732800\nu,,pv,1735732800\n")
    report = ingest(lake, [path], "events")
    assert (report.rows_written, report.rows_quarantined) == (0, 2)
    assert _quarantine(lake)["reason"].to_list()[1] == "empty item_id"


@pytest.mark.parametrize("rows", [0, 3])
def test_gr_tsv_header_only_or_all_rejected(lake: Lake, tmp_path, rows):
    path = write(tmp_path / "s1.tsv", GR_HEADER + "".join(f"{i}\ts\tC1C2\tC3\n" for i in range(rows)))
    report = ingest(lake, [path], "algr-gr-tsv")
    assert (report.rows_read, report.rows_quarantined) == (rows, rows)


def test_gr_tsv_of_exactly_one_block(lake: Lake, tmp_path, monkeypatch):
    from ingest.sources import algr

    monkeypatch.setattr(algr, "GR_BLOCK_ROWS", 4)
    path = write(tmp_path / "s1.tsv", GR_HEADER + "".join(f"{i}\ts\tC1C8193C16385\tC2C8194C16386\n" for i in range(4)))
    assert ingest(lake, [path], "algr-gr-tsv").rows_written == 4


def test_gr_tokens_outside_their_level_are_rejected(lake: Lake, tmp_path):
    good = "C1C8193C16385"
    lines = [
        f"a\ts\t{good}\tC5C5C16384",
        f"b\ts\t{good}\tC1C2C3",
        f"c\ts\tC{10**23}C8193C16385\t{good}",
        f"d\ts\t{good}\t{good}",
    ]
    report = ingest(lake, [write(tmp_path / "s1.tsv", GR_HEADER + "\n".join(lines) + "\n")], "algr-gr-tsv")
    assert (report.rows_written, report.rows_quarantined) == (1, 3)
    reasons = _quarantine(lake)["reason"].to_list()
    assert "level 2 token C5 outside [8192, 16384)" in reasons[0]
    assert "level 2 token C2" in reasons[1] and "level 1 token" in reasons[2]


def test_a_quoted_field_with_a_newline_is_one_record(lake: Lake, tmp_path):
    path = write(tmp_path / "items.csv", 'item_id,title,category\na,"two\nlines",c\nb,plain,c\nc,"open,c\n')
    report = ingest(lake, [path], "items")
    items = lake.scan("items").sort("item_id").collect()
    assert items["title"].to_list() == ["two\nlines", "plain"]
    assert (report.rows_read, report.rows_quarantined) == (3, 1)
    assert "unterminated quoted field" in _quarantine(lake)["reason"][0]


@pytest.mark.parametrize("header", ["id\tid\tsystem\tuser\tanswer", "user_id,user_id,item_id,behavior,timestamp"])
def test_duplicate_columns_fail_the_file(lake: Lake, tmp_path, header):
    fmt = "algr-gr-tsv" if "\t" in header else "events"
    path = write(tmp_path / ("s1.tsv" if fmt == "algr-gr-tsv" else "e.csv"), header + "\n")
    with pytest.raises(SourceError, match=r"e\.csv|s1\.tsv") as err:
        ingest(lake, [path], fmt)
    assert "duplicate column" in str(err.value)


def test_a_record_over_the_size_limit_is_quarantined_in_bounded_memory(lake: Lake, tmp_path):
    path = write(tmp_path / "e.csv", HEADER + "u,i,pv,1735732800\n" + "x" * (1 << 18) + "\nv,i,pv,1735732801\n")
    report = ingest(lake, [path], "events", limits=SMALL)
    assert (report.rows_written, report.rows_quarantined) == (2, 1)
    row = _quarantine(lake).row(0, named=True)
    assert row["line"] == 3 and "longer than 65536 bytes" in row["reason"] and len(row["raw"]) < 1000


def test_a_file_without_newlines_is_read_in_linear_time(lake: Lake, tmp_path):
    path = write(tmp_path / "e.csv", HEADER + "y" * (8 << 20))
    report = ingest(lake, [path], "events", limits=SMALL)
    assert (report.rows_read, report.rows_quarantined) == (1, 1)


def test_a_decompression_bomb_is_quarantined_whole(lake: Lake, tmp_path):
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress((HEADER + "u,i,pv,1735732800\n" * 200_000).encode()))
    report = ingest(lake, [path], "events", limits=SMALL)
    assert (report.rows_written, report.rows_quarantined) == (0, 1)
    assert "inflates" in _quarantine(lake)["reason"][0]


def test_a_truncated_gzip_names_the_file(lake: Lake, tmp_path):
    data = gzip.compress((HEADER + "u,i,pv,1735732800\n" * 5000).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"cut\.csv\.gz"):
        ingest(lake, [path], "events")
    assert not lake.exists("interactions") or lake.scan("interactions").collect().height == 0


def _npz(path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.write_bytes(buf.getvalue())


def test_an_npz_bomb_is_quarantined_whole(lake: Lake, tmp_path):
    path = tmp_path / "bomb.npz"
    _npz(path, ids=np.array([f"i{i}" for i in range(4096)]), embeds=np.zeros((4096, 512), np.float32))
    report = ingest(lake, [path], "npz", limits=SMALL)
    assert (report.rows_written, report.rows_quarantined) == (0, 1)
    assert "inflates" in _quarantine(lake)["reason"][0]


def test_zero_dimensional_ids_fail_with_the_file_named(lake: Lake, tmp_path):
    path = tmp_path / "odd.npz"
    _npz(path, ids=np.array("x"), embeds=np.zeros((1, 4), np.float32))
    with pytest.raises(SourceError, match=r"odd\.npz.*'ids' must be a 1-d array"):
        ingest(lake, [path], "npz")


def test_a_zip_that_is_not_an_npz_names_the_file(lake: Lake, tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("embeds.npy", b"not numpy")
        z.writestr("ids.npy", b"nope")
    with pytest.raises(SourceError, match=r"x\.npz"):
        ingest(lake, [path], "npz")


def test_a_header_of_a_million_columns_fails_the_file_by_name(lake: Lake, tmp_path):
    path = write(tmp_path / "wide.csv", ",".join(f"c{n}" for n in range(1_000_000)) + "\nu,i,pv,1\n")
    with pytest.raises(SourceError, match=r"wide\.csv: the header has 1,000,000 columns, over the limit of 10,000"):
        ingest(lake, [path], "events")
    assert lake.version("interactions") is None


@pytest.mark.parametrize("fmt", ["events", "items"])
def test_a_parquet_schema_over_the_column_limit_fails_the_file(lake: Lake, tmp_path, fmt):
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["user_id", "item_id", "behavior", "timestamp", "title", *(f"x{n}" for n in range(60))]
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({n: ["1"] for n in names}), path)
    with pytest.raises(SourceError, match=r"wide\.parquet: the header has 65 columns, over the limit of 64"):
        ingest(lake, [path], fmt, limits=Limits(max_columns=64))


def test_an_image_link_swapped_during_an_ingest_ends_as_records_not_a_traceback(lake: Lake, tmp_path):
    import os
    import threading

    folder = tmp_path / "items"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "real.png").write_bytes(b"\x89PNG real")
    rows = 3000
    write(folder / "items.csv", "item_id,title,image\n" + "".join(f"i{n},t{n},img/swap.png\n" for n in range(rows)))
    done = threading.Event()

    def swap() -> None:  # the link flips between a symlink and a regular file until the ingest ends
        link, plain, spare = folder / "img" / "swap.png", folder / "img" / "plain.tmp", folder / "img" / "link.tmp"
        while not done.is_set():
            spare.unlink(missing_ok=True)
            spare.symlink_to("real.png")
            os.replace(spare, link)
            plain.write_bytes(b"plain")
            os.replace(plain, link)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        report = ingest(lake, [folder / "items.csv"], "items")
    finally:
        done.set()
        swapper.join(timeout=60)
    assert report.rows_read == rows == report.rows_written + report.rows_quarantined
    reasons = set(lake.scan("quarantine").collect()["reason"])
    assert all("could not be resolved" in r for r in reasons), reasons

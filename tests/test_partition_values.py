"""Partition values of any text (an OpenCLIP model id with `:`, `/`, `%`, spaces, `=`, non-ASCII) are written,
replaced, listed and read back the same on every path: the committer, `file_uris`, Spark's `table_files`, both
engines and both lake kinds."""

from pathlib import Path

import polars as pl
import pytest

from ingest.run import ingest
from lake import Lake
from lake.delta_paths import file_location, folder_value, partition_folder
from lake.frames import to_frame
from tests.helpers import write

ODD = ["sidforge-tiny:random-seed0:concat", "a/b", "50%25 off", "with space", "k=v", "modèle-é"]
SIDS = "item_id,codebook_lv1,codebook_lv2,codebook_lv3\nx,1,2,3\ny,1,2,4\nz,2,2,4\n"


def _emb(tmp_path: Path, tiny_raw: Path, rows: int = 20) -> Path:
    lines = (tiny_raw / "algr" / "item_emb" / "item_emb_000.csv").read_text().splitlines()
    return write(tmp_path / "emb.csv", "\n".join(lines[: rows + 1]) + "\n")


def _counts(lake: Lake, name: str, column: str) -> dict:
    frame = pl.read_delta(lake.uri(name), storage_options=lake.storage_options)
    return dict(frame.group_by(column).len().iter_rows())


def _fill(lake: Lake, emb: Path, sids: Path, engine: str = "polars", **spark) -> None:
    for value in ODD:
        for _ in range(2):  # the rerun must find and remove the first run's files
            ingest(lake, [emb], "algr-item-emb", model=value, engine=engine, **spark)
            ingest(lake, [sids], "algr-item-sid", build_id=value, engine=engine, **spark)


def _check(lake: Lake) -> None:
    assert _counts(lake, "item_embeddings", "model") == dict.fromkeys(ODD, 20)
    assert _counts(lake, "item_sids", "build_id") == dict.fromkeys(ODD, 3)
    fs, root = lake.filesystem()
    for name in ("item_embeddings", "item_sids"):
        uris = lake.file_uris(name)
        assert len(uris) == len(ODD)
        assert all(fs.get_file_info(root + u.split(root, 1)[1]).size for u in uris)


def test_a_value_round_trips_through_its_folder_name():
    for value in [*ODD, "", "%", "%%3A", "a%2Fb"]:
        column, _, text = partition_folder("model", value).partition("=")
        assert (column, folder_value(text)) == ("model", value)
        assert "/" not in text and ":" not in text
    assert folder_value(partition_folder("ds", None).split("=", 1)[1]) is None
    assert file_location("s3://b/lake/t", "model=a%253Ab/f.parquet") == "s3://b/lake/t/model=a%3Ab/f.parquet"


def test_odd_values_on_a_local_lake(tmp_path, tiny_raw):
    lake = Lake(tmp_path / "lake")
    _fill(lake, _emb(tmp_path, tiny_raw), write(tmp_path / "sids.csv", SIDS))
    _check(lake)
    folders = [p.name for p in (tmp_path / "lake" / "item_embeddings").iterdir() if p.name != "_delta_log"]
    assert sorted(folders) == sorted(partition_folder("model", v) for v in ODD)


def test_a_table_delta_rs_wrote_lists_the_files_it_holds(tmp_path):
    lake = Lake(tmp_path / "lake")
    codes = [[1, 2, 3]] * len(ODD)
    rows = pl.DataFrame(
        {"item_id": ODD, "codes_raw": codes, "codes": codes, "sid": ODD, "source": "t", "run_id": "r", "build_id": ODD}
    )
    lake.append("item_sids", rows, run_id="r")  # through write_deltalake, delta-rs's own layout
    uris = lake.file_uris("item_sids")
    assert sorted(Path(u).parent.name for u in uris) == sorted(partition_folder("build_id", v) for v in ODD)
    assert all(Path(u).is_file() for u in uris)


def test_odd_values_on_an_object_store_lake(tmp_path, tiny_raw, s3_bucket):
    lake = Lake(f"s3://{s3_bucket}/lake")
    _fill(lake, _emb(tmp_path, tiny_raw), write(tmp_path / "sids.csv", SIDS))
    _check(lake)


@pytest.mark.slow
@pytest.mark.spark
def test_odd_values_on_the_spark_engine_and_spark_reads(spark, tmp_path, tiny_raw):
    from lake.spark import read_table

    lake = Lake(tmp_path / "lake")
    _fill(lake, _emb(tmp_path, tiny_raw), write(tmp_path / "sids.csv", SIDS), engine="spark", spark_master="local[2]")
    _check(lake)
    for name, column in (("item_embeddings", "model"), ("item_sids", "build_id")):
        read = to_frame(read_table(spark, lake, name, columns=["item_id", column]).toArrow())
        assert dict(read.group_by(column).len().iter_rows()) == _counts(lake, name, column)
        one = read_table(spark, lake, name, where={column: ODD[0]}, columns=["item_id"]).count()
        assert one == _counts(lake, name, column)[ODD[0]]

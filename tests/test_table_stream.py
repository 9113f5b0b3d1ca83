"""A table streamed one data file (and one row group) at a time gives the rows a Polars scan gives, and the SID
steps that read it that way sample, fingerprint and count exactly as the whole-table reads did."""

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from builds.drift import embeddings, fingerprint, item_count, item_ids, sample_of
from ingest.run import ingest
from lake import Lake
from lake.commit_plan import StagedWriter
from lake.frames import to_frame
from lake.table_stream import table_batches
from sid_index.build import sample_rows


def _lake(tmp_path, tiny_raw) -> Lake:
    lake = Lake(tmp_path / "lake")
    for model in ("a:1", "b/2"):
        ingest(lake, [tiny_raw / "algr" / "item_emb"], "algr-item-emb", model=model)
    return lake


def _rows(batches) -> pl.DataFrame:
    return pl.concat([to_frame(b) for b in batches]).sort("item_id")


def test_the_stream_equals_the_scan_by_partition_columns_and_version(tmp_path, tiny_raw):
    lake = _lake(tmp_path, tiny_raw)
    scan = lake.scan("item_embeddings")
    streamed = _rows(
        table_batches(lake, "item_embeddings", where={"model": "b/2"}, columns=["item_id", "model", "dim"])
    )
    expected = scan.filter(pl.col("model") == "b/2").select("item_id", "model", "dim").collect().sort("item_id")
    assert streamed.equals(expected) and streamed.height == 300
    first = _rows(table_batches(lake, "item_embeddings", version=1, columns=["item_id", "model"]))
    assert first["model"].unique().to_list() == ["a:1"] and first.height == 300
    assert item_count(lake, "a:1") == 300 and item_count(lake, "none") == 0


def test_sampling_and_fingerprint_equal_the_whole_table_reads(tmp_path, tiny_raw):
    lake = _lake(tmp_path, tiny_raw)
    whole = lake.scan("item_embeddings").filter(pl.col("model") == "a:1").select("item_id", "embedding")
    stream = embeddings(lake, "a:1", batch_rows=64)
    rows = sample_rows(300, 50, seed=3)
    before = whole.sort("item_id").with_row_index("row").filter(pl.col("row").is_in(pl.Series(rows).implode()))
    assert sample_of(stream, rows).equals(before.drop("row").collect())
    expected = whole.select(pl.struct("item_id", "embedding").hash(seed=1).sum()).collect().item()
    assert fingerprint(stream) == expected
    known = whole.collect()["item_id"].head(100)
    assert item_ids(stream, without=known).to_list() == sorted(set(whole.collect()["item_id"]) - set(known))


def test_wide_rows_are_staged_in_row_groups_of_bounded_size(tmp_path):
    import pyarrow.fs as pafs

    n, dim = 40_000, 512
    vectors = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    rows = pl.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(n)],
            "modalities": "precomputed",
            "embedding": pa.FixedSizeListArray.from_arrays(vectors.ravel(), dim).cast(pa.list_(pa.float32())),
            "dim": pl.Series([dim] * n, dtype=pl.Int32),
            "content_hash": "",
            "source": "s",
            "run_id": "r",
            "model": "m",
        }
    )
    writer = StagedWriter(pafs.LocalFileSystem(), "item_embeddings", str(tmp_path / "staging"))
    writer.write(rows, "0123456789abcdef")
    (path,) = writer.close()
    meta = pq.read_metadata(path)
    assert meta.num_rows == n and meta.num_row_groups >= 2
    assert max(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)) < 96 << 20

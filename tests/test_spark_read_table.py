"""Spark reads a lake table through its tasks (pyarrow, file URIs from the Delta log): the whole table equals
Polars' scan, and a partition filter or a column list opens only what it names."""

import polars as pl
import pytest

from ingest.run import ingest
from lake import Lake
from lake.frames import to_frame
from lake.spark import read_table

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture
def two_models(tmp_path, tiny_raw) -> Lake:
    lake = Lake(tmp_path / "lake")
    for model in ("model-a", "model-b"):
        ingest(lake, [tiny_raw / "algr" / "item_emb"], "algr-item-emb", model=model)
    return lake


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort([c for c, kind in frame.schema.items() if not isinstance(kind, pl.List)])


def test_the_whole_table_equals_polars(spark, two_models):
    spark_rows = to_frame(read_table(spark, two_models, "item_embeddings").toArrow())
    polars_rows = two_models.scan("item_embeddings").collect()
    assert spark_rows.columns == polars_rows.columns
    assert _sorted(spark_rows).equals(_sorted(polars_rows))


def test_a_partition_and_columns_read_only_those(spark, two_models):
    frame = read_table(spark, two_models, "item_embeddings", where={"model": "model-b"}, columns=["item_id", "dim"])
    rows = to_frame(frame.toArrow())
    expected = two_models.scan("item_embeddings").filter(pl.col("model") == "model-b").select("item_id", "dim")
    assert rows.columns == ["item_id", "dim"]
    assert rows.sort("item_id").equals(expected.collect().sort("item_id"))
    assert read_table(spark, two_models, "item_embeddings", where={"model": "none"}).count() == 0
    with pytest.raises(ValueError, match="partition columns"):
        read_table(spark, two_models, "item_embeddings", where={"dim": "512"})

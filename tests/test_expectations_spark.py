"""The same suites through GX's Spark data source on tables read by Spark from their live Delta files."""

import pytest

from ingest.run import ingest
from lake import Lake
from quality.expectations import Validator

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def test_spark_validation_passes_clean_tables_and_catches_bad_rows(spark, tmp_path, tiny_raw):
    from pyspark.sql import functions as F

    from lake.spark import read_table

    lake = Lake(tmp_path / "lake")
    ingest(lake, [tiny_raw / "events"], "events")
    ingest(lake, [tiny_raw / "algr" / "item_emb"], "algr-item-emb")
    ingest(lake, [tiny_raw / "algr" / "item_sid"], "algr-item-sid")
    validator = Validator(tmp_path / "reports")
    sizes = {"algr-item_sid_final": [8192, 8192, 8192]}
    for name in ("interactions", "item_embeddings", "item_sids"):
        frame = read_table(spark, lake, name)
        assert frame.count() == lake.scan(name).collect().height
        outcome = validator.validate_spark(name, frame, sizes)
        assert outcome.success, (name, outcome.failures)

    events = read_table(spark, lake, "interactions")
    bad = events.unionByName(events.limit(1).withColumn("behavior", F.lit("zap"))).unionByName(events.limit(1))
    outcome = validator.validate_spark("interactions", bad)
    assert not outcome.success and outcome.exact["duplicate_keys"] == 1
    assert {f["expectation"] for f in outcome.failures} == {
        "expect_column_values_to_be_in_set",
        "expect_compound_columns_to_be_unique",
    }
    sids = read_table(spark, lake, "item_sids")
    far = sids.limit(1).withColumn("item_id", F.lit("far")).withColumn("codes", F.array(*map(F.lit, [1, 2, 9000])))
    outcome = validator.validate_spark("item_sids", sids.unionByName(far), sizes)
    assert [f["kwargs"]["column"] for f in outcome.failures] == ["codes_in_range"]
    assert outcome.docs and outcome.docs.endswith("index.html")

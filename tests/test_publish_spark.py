"""Publishing through Spark (shards written by the executors) gives the same version as the polars engine: the
same manifest, the same shards byte for byte, the same counts."""

import pytest

from ingest.run import ingest
from lake import Lake
from publish.training_data import publish_training_data

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def _lake(root, raw) -> Lake:
    lake = Lake(root)
    ingest(lake, [raw / "algr" / "origin_behavior"], "algr-sequences", run_id="a")
    ingest(lake, [raw / "algr" / "train_data"], "algr-gr-tsv", run_id="b")
    ingest(lake, [raw / "algr" / "item_sid"], "algr-item-sid", run_id="c")
    ingest(lake, [raw / "events"], "events", run_id="d")
    return lake


@pytest.mark.parametrize("source", ["user_sequences", "interactions"])
def test_spark_and_polars_publish_identical_versions(spark, tmp_path, tiny_raw, source):
    shards, manifests, counts = {}, {}, {}
    for engine in ("polars", "spark"):
        lake = _lake(tmp_path / engine, tiny_raw)
        report = publish_training_data(
            lake,
            build_id="algr-item_sid_final",
            source=source,
            engine=engine,
            rows_per_shard=100,
            test_days=["2025-01-04"] if source == "interactions" else [],
        )
        shards[engine] = [(s["path"], s["rows"], s["sha256"]) for s in report.published.manifest["shards"]]
        manifests[engine] = report.published.manifest
        counts[engine] = (report.examples, report.skipped_without_target_sid, report.history_unknown_items)
        assert report.examples > 0
    assert shards["polars"] == shards["spark"]
    assert len(shards["spark"]) > 2
    assert manifests["polars"] == manifests["spark"]
    assert counts["polars"] == counts["spark"]

"""The catalog declares every table of DESIGN.md §2 with consistent partitions and keys."""

import pyarrow as pa
import pytest

from lake import TABLES, Lake, table

DESIGN_TABLES = {
    "interactions",
    "user_sequences",
    "items",
    "item_pairs",
    "item_embeddings",
    "sid_builds",
    "codebooks",
    "item_sids",
    "published_datasets",
    "quarantine",
}


def test_every_design_table_is_declared():
    assert set(TABLES) == DESIGN_TABLES


@pytest.mark.parametrize("name", sorted(DESIGN_TABLES))
def test_partitions_and_keys_are_columns(name):
    spec = table(name)
    assert set(spec.partition_by) <= set(spec.schema.names)
    assert set(spec.keys) <= set(spec.schema.names)
    assert spec.data_columns == [n for n in spec.schema.names if n not in spec.partition_by]


def test_interaction_timestamps_are_utc_micros():
    assert table("interactions").schema.field("event_ts").type == pa.timestamp("us", tz="UTC")


def test_unknown_table_names_the_known_ones():
    with pytest.raises(KeyError, match="interactions"):
        table("nope")


def test_every_column_is_described_and_the_ui_gets_the_descriptions(tmp_path, tiny_raw):
    from assets.metadata import table_metadata
    from ingest.run import ingest

    for spec in TABLES.values():
        assert list(spec.columns) == spec.schema.names
        assert all(len(text) > 8 for text in spec.columns.values()), spec.name
    lake = Lake(tmp_path / "lake")
    ingest(lake, [tiny_raw / "items" / "items.csv"], "items")
    schema = table_metadata(lake, "items")["dagster/column_schema"]
    shown = {c.name: c.description for c in schema.columns}
    assert shown == TABLES["items"].columns and "content_hash" in shown

"""The catalog declares every table of DESIGN.md §2 with consistent partitions and keys."""

import pyarrow as pa
import pytest

from lake import TABLES, table

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

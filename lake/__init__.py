"""sidforge's storage layer: the table catalog, Delta reads and writes, and the Spark bridge.

>>> from lake import Lake
>>> Lake("./data/lake").scan("interactions").filter(pl.col("behavior") == "buy").collect()
"""

from lake.catalog import TABLES, TableSpec, table
from lake.feature_store import FeatureStore
from lake.lake import Lake, partition_predicate

__all__ = ["TABLES", "FeatureStore", "Lake", "TableSpec", "partition_predicate", "table"]

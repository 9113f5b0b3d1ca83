"""sidforge's storage floor: the table catalog, Delta reads and writes, commits and recovery, Spark.

>>> from lake import Lake
>>> Lake("./data/lake").scan("interactions").filter(pl.col("behavior") == "buy").collect()
"""

from lake.catalog import TABLES, TableSpec, table
from lake.lake import Lake, partition_predicate

__all__ = ["TABLES", "Lake", "TableSpec", "partition_predicate", "table"]

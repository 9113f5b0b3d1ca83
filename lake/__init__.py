"""sidforge's storage floor: the table catalog, Delta reads and writes, commits and recovery, Spark, files.

>>> from lake import Lake
>>> Lake("./data/lake").scan("interactions").filter(pl.col("behavior") == "buy").collect()

The names below load on first use, so `lake.storage` imports with pyarrow alone.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lake.catalog import TABLES, TableSpec, table
    from lake.lake import Lake, partition_predicate

_HOMES = {
    "TABLES": "catalog",
    "TableSpec": "catalog",
    "table": "catalog",
    "Lake": "lake",
    "partition_predicate": "lake",
}

__all__ = ["TABLES", "Lake", "TableSpec", "partition_predicate", "table"]


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'lake' has no attribute {name!r}")
    return getattr(import_module(f"lake.{_HOMES[name]}"), name)

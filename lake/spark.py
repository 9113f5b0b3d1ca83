"""A Spark session configured for the lake: UTC, Arrow, microsecond timestamps, zstd Parquet."""

from __future__ import annotations

import os
import sys
import warnings
from functools import reduce
from urllib.parse import unquote

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from lake.catalog import TableSpec, table
from lake.lake import Lake
from lake.settings import DEFAULT_DRIVER_MEMORY, DEFAULT_SPARK_MASTER


def read_table(spark: SparkSession, lake: Lake, name: str) -> DataFrame:
    """A Spark DataFrame of a lake table read from its live files (never a directory listing), with the
    partition columns restored from the Delta log."""
    spec = table(name)
    files = lake.files(name)
    if not files.height:
        return spark.createDataFrame([], from_arrow_schema(spec.schema, prefer_timestamp_ntz=False))
    stored = from_arrow_schema(pa.schema([spec.schema.field(c) for c in spec.data_columns]), prefer_timestamp_ntz=False)
    # The Delta log's own file URIs (never a listing), keyed by their path inside the table.
    uris = {unquote(u.split(f"/{spec.name}/", 1)[-1]): lake.file_uri(u) for u in lake.file_uris(name)}
    keys = [f"partition.{c}" for c in spec.partition_by]
    groups = files.group_by(keys, maintain_order=True) if keys else [((), files)]
    parts = []
    for key, group in groups:
        frame = spark.read.schema(stored).parquet(*[uris[unquote(p)] for p in group["path"]])
        for column, value in zip(spec.partition_by, key, strict=True):
            frame = frame.withColumn(column, F.lit(value).cast(stored_type(spec, column)))
        parts.append(frame.select(*spec.schema.names))
    return reduce(DataFrame.unionByName, parts)


def stored_type(spec: TableSpec, column: str) -> str:
    """Spark SQL type name of a (partition) column."""
    field = from_arrow_schema(pa.schema([spec.schema.field(column)]), prefer_timestamp_ntz=False)[0]
    return field.dataType.simpleString()


def spark_session(
    master: str | None = None, app_name: str = "sidforge", conf: dict[str, str] | None = None
) -> SparkSession:
    """Get or create the Spark session at `master` (default local[2]); `conf` adds or overrides settings.

    In local mode the driver and its block manager listen on 127.0.0.1 only."""
    master = master or DEFAULT_SPARK_MASTER
    local = master.startswith("local")
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # The lake's Spark path is Arrow-native; PySpark's pandas version probe warns about pandas 3 anyway.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.sources.partitionOverwriteMode": "static",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": DEFAULT_DRIVER_MEMORY,
        "spark.pyspark.python": os.environ["PYSPARK_PYTHON"],
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        **({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"} if local else {}),
        **(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session

"""A Spark session configured for the lake: UTC, Arrow, microsecond timestamps, zstd Parquet."""

from __future__ import annotations

import os
import sys
import warnings

from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"


def spark_session(master: str | None = None, app_name: str = "sidforge",
                  conf: dict[str, str] | None = None) -> SparkSession:
    """Get or create the Spark session (`master` from the argument, SIDFORGE_SPARK_MASTER, or local[2])."""
    master = master or os.environ.get("SIDFORGE_SPARK_MASTER") or DEFAULT_MASTER
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
        "spark.driver.memory": os.environ.get("SIDFORGE_SPARK_DRIVER_MEMORY", "2g"),
        "spark.pyspark.python": os.environ["PYSPARK_PYTHON"],
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        **(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session

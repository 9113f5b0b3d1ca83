"""A Spark session configured for the lake: UTC, Arrow, microsecond timestamps, zstd Parquet."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from lake.catalog import table
from lake.delta_paths import file_location
from lake.journal import process_running
from lake.lake import Lake
from lake.settings import DEFAULT_DRIVER_MEMORY, DEFAULT_SPARK_MASTER
from lake.table_stream import fields_of, live_files, read_file


@dataclass(frozen=True)
class TableFiles:
    """A lake table's live files for Spark tasks: `files` has one row per file (`file_no`, and `file`: its URI
        and partition values as JSON, also in `descriptors` by number); tasks call `open` on a `file` value to read
        its batches (the `fields`, catalog-typed, partition columns filled in from the Delta log). `rows`: their
    row count, from the log's statistics."""

    files: DataFrame
    descriptors: list[str]
    fields: pa.Schema
    open: Callable[[str], Iterator[pa.RecordBatch]]
    rows: int

    def frame(self) -> DataFrame:
        """The files' rows as one DataFrame, read by the tasks."""
        read = self.open

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                for text in batch.column("file").to_pylist():
                    yield from read(text)

        return self.files.mapInArrow(run, from_arrow_schema(self.fields, prefer_timestamp_ntz=False))


def table_files(
    spark: SparkSession,
    lake: Lake,
    name: str,
    *,
    where: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
) -> TableFiles:
    """The live files of a lake table, taken from the Delta log (never a listing), for tasks that open them
    through pyarrow's filesystems (so an object-store lake needs no Hadoop connector). `where` keeps the files
    of those partition values only (the others are never opened); `columns` reads only those columns."""
    spec = table(name)
    fields = fields_of(name, columns)
    files = live_files(lake, name, where)
    keys = [f"partition.{c}" for c in spec.partition_by]
    descriptors: list[str] = []
    if files.height:
        table_uri = lake.uri(name)
        descriptors = [
            json.dumps(
                [file_location(table_uri, row["path"]), *(None if row[k] is None else str(row[k]) for k in keys)]
            )
            for row in files.select("path", *keys).iter_rows(named=True)
        ]
    slices = max(1, min(len(descriptors), 4 * spark.sparkContext.defaultParallelism))
    listing = spark.sparkContext.parallelize(list(enumerate(descriptors)), slices)
    frame = spark.createDataFrame(listing, "file_no int, file string")
    read = _file_reader(name, fields, lake.storage_options)
    return TableFiles(frame, descriptors, fields, read, int(files["num_records"].sum()) if files.height else 0)


def read_table(
    spark: SparkSession,
    lake: Lake,
    name: str,
    *,
    where: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
) -> DataFrame:
    """A Spark DataFrame of a lake table, read by tasks from its live files (see `table_files`)."""
    return table_files(spark, lake, name, where=where, columns=columns).frame()


def _file_reader(name: str, fields: pa.Schema, options: dict[str, str] | None):
    """What a task calls on a file's descriptor: the `fields` of its batches (`table_stream.read_file`)."""
    spec = table(name)

    def read(text: str) -> Iterator[pa.RecordBatch]:
        uri, *values = json.loads(text)
        yield from read_file(uri, dict(zip(spec.partition_by, values, strict=True)), fields, options)

    return read


def spark_session(
    master: str | None = None, app_name: str = "sidforge", conf: dict[str, str] | None = None
) -> SparkSession:
    """Get or create the Spark session at `master` (default local[2]); `conf` adds or overrides settings.

    In local mode the driver and its block manager listen on 127.0.0.1 only. On a cluster the project's code
    is shipped to the executors with the session (`code_archive`); their Python (`PYSPARK_PYTHON`, the
    driver's by default) needs the project's dependencies, and they reach an object-store lake with their own
    `AWS_*` (or `GOOGLE_*`, `AZURE_*`) credentials, or the lake's storage options."""
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
        # Executors of one host on a cluster fetch each other's shuffle blocks over the network: reading them
        # from the local disk assumes one shared disk, which separate working folders do not have (FetchFailed).
        **({} if local else {"spark.shuffle.readHostLocalDisk": "false"}),
        **(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if session.sparkContext.master != master:  # a session at another master was running in this process
        session.stop()
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    if not local and session.sparkContext.applicationId not in _SHIPPED:
        remove_orphan_code_folders()
        folder = Path(tempfile.mkdtemp(prefix=f"{CODE_FOLDER}{os.getpid()}-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # served to executors for the session's life
        session.sparkContext.addPyFile(str(code_archive(folder / "sidforge.zip")))
        _SHIPPED.add(session.sparkContext.applicationId)
    return session


LIBRARIES = ("lake", "ingest", "publish", "builds", "quality", "sid_index", "embeddings", "serving")
CODE_FOLDER = "sidforge-py-files-"  # + the driver's pid: where the archive served to executors lies
_SHIPPED: set[str] = set()  # applications that have the code archive


def remove_orphan_code_folders(parent: str | None = None) -> list[Path]:
    """Remove the code folders of drivers that are gone (killed before their exit hook ran); returns them."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(f"{CODE_FOLDER}*"):
        pid = folder.name.removeprefix(CODE_FOLDER).split("-", 1)[0]
        if pid.isdigit() and not process_running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def code_archive(target: Path) -> Path:
    """The project's library packages, zipped from the code running here, for a cluster's executors (what
    `--py-files` ships): tasks import the driver's code, never an older copy installed on the hosts."""
    root = Path(__file__).resolve().parent.parent
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in LIBRARIES:
            for source in sorted((root / package).rglob("*.py")):
                archive.write(source, source.relative_to(root).as_posix())
    return target

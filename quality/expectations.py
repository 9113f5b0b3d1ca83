"""Great Expectations (1.x) suites for every lake table, validated on pandas frames made from Polars.

Columns GX cannot express directly (list lengths, vector norms, a timestamp's day against its partition)
are derived in Polars first and checked like any other column. Large tables are validated on a seeded
sample while keys (non-null, unique) are checked exactly with Polars aggregates over the whole table.
Data Docs are written under `<reports>/gx/`.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import polars as pl

from builds.registry import TABLE as BUILDS_TABLE
from builds.registry import BuildStatus
from lake import storage
from lake.catalog import BEHAVIORS, TABLES, table
from quality.validation_report import expectation_rows, write_validation_report

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

MAX_SEQUENCE = 1000
SAMPLE_ROWS = 200_000


@dataclass
class Outcome:
    """The result of validating one table: success, failed expectations and exact key checks."""

    table: str
    success: bool
    rows: int
    validated_rows: int
    failures: list[dict] = field(default_factory=list)
    exact: dict[str, Any] = field(default_factory=dict)
    docs: str | None = None
    report: str | None = None


@dataclass(frozen=True)
class Run:
    """Who validates: the Dagster run (its id names the GX run in Data Docs) and the partition, if any."""

    name: str
    partition: str | None = None

    def identifier(self):
        """GX's run identifier: the run name with the partition, instead of GX's `__none__`."""
        from great_expectations.core.run_identifier import RunIdentifier

        return RunIdentifier(run_name=self.name + (f"_ds={self.partition}" if self.partition else ""))


NO_RUN = Run("manual")


def derived(name: str, frame: pl.DataFrame, sizes: dict[str, list[int]] | None = None) -> pl.DataFrame:
    """Add the derived columns that the table's suite checks."""
    if name == "interactions":
        return frame.with_columns(event_day=pl.col("event_ts").dt.strftime("%Y-%m-%d"))
    if name == "user_sequences":
        return frame.with_columns(history_len=pl.col("history").list.len(), target_len=pl.col("target").list.len())
    if name == "item_embeddings":
        norm = pl.col("embedding").list.eval(pl.element().pow(2)).list.sum().sqrt()
        return frame.with_columns(
            embedding_len_ok=pl.col("embedding").list.len() == pl.col("dim"),
            finite=pl.col("embedding").list.eval(pl.element().is_finite()).list.all(),
            unit_norm=(pl.col("modalities") == "precomputed") | ((norm - 1).abs() < 1e-3),
        )
    if name == "item_sids":
        limits = pl.col("build_id").replace_strict(
            {b: s for b, s in (sizes or {}).items()}, default=None, return_dtype=pl.List(pl.Int64)
        )
        return frame.with_columns(
            codes_in_range=pl.struct(pl.col("codes"), limits.alias("limit")).map_elements(
                lambda r: (
                    r["limit"] is not None
                    and len(r["codes"]) == len(r["limit"])
                    and all(0 <= c < s for c, s in zip(r["codes"], r["limit"], strict=True))
                ),
                return_dtype=pl.Boolean,
            )
        )
    if name == "item_pairs":
        return frame.with_columns(distinct_items=pl.col("item_id") != pl.col("pair_item_id"))
    return frame


def expectations(name: str) -> list:
    """The expectations of table `name`: schema, non-null keys, uniqueness, value sets and ranges."""
    import great_expectations as gx

    e = gx.expectations
    spec = table(name)
    out: list[Any] = [e.ExpectTableColumnsToMatchSet(column_set=list(spec.schema.names), exact_match=False)]
    out += [e.ExpectColumnValuesToNotBeNull(column=k) for k in spec.keys]
    out.append(
        e.ExpectCompoundColumnsToBeUnique(column_list=list(spec.keys))
        if len(spec.keys) > 1
        else e.ExpectColumnValuesToBeUnique(column=spec.keys[0])
    )
    rules: dict[str, list[Any]] = {
        "interactions": [
            e.ExpectColumnValuesToBeInSet(column="behavior", value_set=list(BEHAVIORS)),
            e.ExpectColumnPairValuesToBeEqual(column_A="event_day", column_B="ds"),
        ],
        "user_sequences": [
            e.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test"]),
            e.ExpectColumnValuesToBeInSet(column="id_space", value_set=["item", "sid"]),
            e.ExpectColumnValuesToBeBetween(column="stage", min_value=1, max_value=99),
            e.ExpectColumnValuesToBeBetween(column="history_len", min_value=0, max_value=MAX_SEQUENCE),
            e.ExpectColumnValuesToBeBetween(column="target_len", min_value=1, max_value=MAX_SEQUENCE),
        ],
        "items": [e.ExpectColumnValuesToNotBeNull(column="content_hash")],
        "item_pairs": [
            e.ExpectColumnValuesToBeBetween(column="weight", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeInSet(column="distinct_items", value_set=[True]),
        ],
        "item_embeddings": [
            e.ExpectColumnValuesToBeInSet(column=c, value_set=[True])
            for c in ("embedding_len_ok", "finite", "unit_norm")
        ],
        "item_sids": [
            e.ExpectColumnValuesToBeInSet(column="codes_in_range", value_set=[True]),
            e.ExpectColumnValuesToNotBeNull(column="sid"),
        ],
        BUILDS_TABLE: [e.ExpectColumnValuesToBeInSet(column="status", value_set=[str(s) for s in BuildStatus])],
        "codebooks": [
            e.ExpectColumnValuesToBeBetween(column="level", min_value=1),
            e.ExpectColumnValuesToBeBetween(column="code", min_value=0),
        ],
        "quarantine": [
            e.ExpectColumnValuesToNotBeNull(column="reason"),
            e.ExpectColumnValuesToBeInSet(column="table", value_set=list(TABLES)),
        ],
    }
    return [*out, *rules.get(name, [])]


def derived_spark(name: str, frame, sizes: dict[str, list[int]] | None = None):
    """The same derived columns as `derived`, as Spark SQL expressions."""
    from pyspark.sql import functions as F

    if name == "interactions":
        return frame.withColumn("event_day", F.date_format("event_ts", "yyyy-MM-dd"))
    if name == "user_sequences":
        return frame.withColumn("history_len", F.size("history")).withColumn("target_len", F.size("target"))
    if name == "item_embeddings":
        norm = F.sqrt(F.aggregate("embedding", F.lit(0.0).cast("double"), lambda acc, x: acc + x * x))
        return (
            frame.withColumn("embedding_len_ok", F.size("embedding") == F.col("dim"))
            .withColumn("finite", F.forall("embedding", lambda x: ~F.isnan(x) & (F.abs(x) < float("inf"))))
            .withColumn("unit_norm", (F.col("modalities") == "precomputed") | (F.abs(norm - 1) < 1e-3))
        )
    if name == "item_sids":
        limits = (
            F.create_map(*[v for b, s in (sizes or {}).items() for v in (F.lit(b), F.array(*map(F.lit, s)))])
            if sizes
            else F.create_map()
        )
        limit = limits[F.col("build_id")]
        in_range = F.forall(
            F.arrays_zip(F.col("codes").alias("c"), limit.alias("s")), lambda z: (z["c"] >= 0) & (z["c"] < z["s"])
        )
        return frame.withColumn(
            "codes_in_range",
            F.coalesce(limit.isNotNull() & (F.size("codes") == F.size(limit)) & in_range, F.lit(False)),
        )
    if name == "item_pairs":
        return frame.withColumn("distinct_items", F.col("item_id") != F.col("pair_item_id"))
    return frame


class Validator:
    """A file-backed GX context, one pandas data source, a checkpoint per table. On a local lake the GX project
    lives under `<reports>/gx`; on an object-store lake it lives in a temporary folder and its Data Docs are
    copied to `<reports>/gx/data_docs/` after each validation (GX's own stores need a local folder)."""

    def __init__(self, reports: str | Path, options: storage.Options = None):
        self.reports, self.options = storage.normalize(reports), options
        self._scratch = tempfile.TemporaryDirectory(prefix="sidforge-gx-") if storage.is_uri(self.reports) else None
        project = self._scratch.name if self._scratch else self.reports
        Path(project).mkdir(parents=True, exist_ok=True)
        self._lock_file = Path(project) / ".sidforge-gx.lock"
        with self._project_lock(), warnings.catch_warnings():  # GX imports pyspark, which warns about pandas 3
            warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.context = gx.get_context(mode="file", project_root_dir=project)
            self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self.source = self.context.data_sources.add_or_update_pandas("sidforge")
        self.gx = gx
        self._checkpoints: dict[str, Any] = {}
        self._spark_source: Any = None

    def _checkpoint(self, name: str, source=None, suffix: str = ""):
        """The table's checkpoint, created (or updated) in the GX project once per Validator."""
        if name + suffix not in self._checkpoints:
            self._checkpoints[name + suffix] = self._new_checkpoint(name, source or self.source, suffix)
        return self._checkpoints[name + suffix]

    @contextmanager
    def _project_lock(self) -> Iterator[None]:
        """Processes that share the GX project (two runs on one lake) take turns with it: GX rewrites its config
        and stores in place, and a process reading between another's writes saw half a file or a checkpoint
        that "already exists"."""
        with self._lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run(self, name: str, batch: Any, run: Run, spark: bool = False):
        """Run the table's checkpoint on `batch` (creating it first), holding the project's lock."""
        with self._project_lock():
            checkpoint = self._table_checkpoint(name, spark)
            return checkpoint.run(batch_parameters={"dataframe": batch}, run_id=run.identifier())

    def _table_checkpoint(self, name: str, spark: bool):
        """The checkpoint of `name` on the pandas data source, or on the Spark one (created once per Validator:
        updating a data source drops the assets it holds)."""
        if not spark:
            return self._checkpoint(name)
        if self._spark_source is None:
            self._spark_source = self.context.data_sources.add_or_update_spark("sidforge_spark")
        return self._checkpoint(name, self._spark_source, "_spark")

    def _new_checkpoint(self, name: str, source, suffix: str):
        gx = self.gx
        try:
            asset = source.get_asset(name)
        except LookupError:
            asset = source.add_dataframe_asset(name)
        batch = next(
            (b for b in asset.batch_definitions if b.name == "whole"), None
        ) or asset.add_batch_definition_whole_dataframe("whole")
        suite = self.context.suites.add_or_update(
            gx.ExpectationSuite(name=name + suffix, expectations=expectations(name))
        )
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(data=batch, suite=suite, name=name + suffix)
        )
        return self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name + suffix,
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            )
        )

    def _outcome(self, name: str, result, rows: int, validated: int, exact: dict, run: Run) -> Outcome:
        """The outcome of a checkpoint run, with its offline HTML report written beside the Data Docs."""
        every = expectation_rows(result)
        success = bool(result.success) and exact["null_keys"] == 0 and exact["duplicate_keys"] == 0
        report = write_validation_report(
            storage.join(self.reports, "validations"),
            name,
            run.name,
            run.partition,
            success,
            rows,
            validated,
            exact,
            every,
            self.options,
        )
        failures = [{k: v for k, v in e.items() if k != "success"} for e in every if not e["success"]]
        return Outcome(name, success, rows, validated, failures, exact, self.docs_index(), report)

    def validate(
        self,
        name: str,
        frame: pl.DataFrame,
        sizes: dict[str, list[int]] | None = None,
        sample_rows: int = SAMPLE_ROWS,
        seed: int = 0,
        run: Run = NO_RUN,
    ) -> Outcome:
        """Validate a table (a seeded sample beyond `sample_rows`, keys exactly) and refresh Data Docs."""
        spec = table(name)
        exact = {
            "null_keys": int(frame.select(pl.any_horizontal(pl.col(list(spec.keys)).is_null()).sum()).item()),
            "duplicate_keys": frame.height - frame.select(pl.struct(list(spec.keys)).n_unique()).item()
            if frame.height
            else 0,
        }
        sample = frame.sample(sample_rows, seed=seed) if frame.height > sample_rows else frame
        pandas = derived(name, sample, sizes).to_pandas(use_pyarrow_extension_array=True)
        result = self._run(name, pandas, run)
        return self._outcome(name, result, frame.height, sample.height, exact, run)

    def validate_spark(self, name: str, frame, sizes: dict[str, list[int]] | None = None, run: Run = NO_RUN) -> Outcome:
        """Validate a Spark DataFrame of the table with the Spark data source (the Spark engine's path)."""
        from pyspark.sql import functions as F

        spec = table(name)
        keys = list(spec.keys)
        total = frame.count()
        any_null = reduce(lambda a, b: a | b, [F.col(k).isNull() for k in keys])
        stats = frame.agg(F.sum(F.when(any_null, 1).otherwise(0)).alias("n"), F.countDistinct(*keys).alias("d")).first()
        nulls, distinct = int(stats["n"] or 0), int(stats["d"] or 0)
        exact = {"null_keys": nulls, "duplicate_keys": total - nulls - distinct if total else 0}
        result = self._run(name, derived_spark(name, frame, sizes), run, spark=True)
        return self._outcome(name, result, total, total, exact, run)

    def docs_index(self) -> str | None:
        """Location of the Data Docs index page (in the lake's `_reports` on an object-store lake)."""
        sites = self.context.get_docs_sites_urls()
        url = sites[0]["site_url"] if sites else None
        local = url.removeprefix("file://") if url else None
        if local is None or self._scratch is None:
            return local
        site = Path(local).parent
        target = storage.join(self.reports, "gx", "data_docs")
        for file in sorted(p for p in site.rglob("*") if p.is_file()):
            storage.write_bytes(
                storage.join(target, file.relative_to(site).as_posix()), file.read_bytes(), self.options
            )
        return storage.join(target, "index.html")

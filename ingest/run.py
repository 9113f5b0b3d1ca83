"""Ingest source files into the lake: parse, validate, de-duplicate, stage Parquet, commit once.

Both engines (`ingest.polars_engine`, `ingest.spark_engine`) are strategies over one plan (`ingest.plan`):
the same readers, the same quarantine records and the same commit plan, so they produce identical tables.
A rerun of an input replaces exactly what that input wrote before (files are keyed by format and normalised
path); whole partitions go only when asked. Data and quarantine records are staged, planned in the run's
journal, then committed (`lake.commit_plan`). Every record is accounted for: read = written + quarantined.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from builds.registry import BuildRegistry
from ingest.formats import Format, ReadOptions, default_build, default_model, expand_paths, get_format
from ingest.plan import Engine, IngestReport, Job, Progress, conform_rejects, new_run_id, plan_commit
from ingest.polars_engine import PolarsEngine
from ingest.sources.limits import Limits
from lake import journal
from lake.commit_plan import apply, plan_record, recover
from lake.faults import crash_point
from lake.lake import ConcurrentWriteError, Lake
from lake.provenance import source_key
from lake.settings import EngineName, check_engine

__all__ = ["IngestReport", "ingest", "make_engine", "new_run_id"]


def make_engine(name: EngineName, spark_master: str | None = None) -> Engine:
    """The ingest engine called `name`: polars in this process, or Spark at `spark_master`."""
    if check_engine(name) == "spark":
        from ingest.spark_engine import SparkEngine

        return SparkEngine(spark_master)
    return PolarsEngine()


def ingest(
    lake: Lake,
    paths: Sequence[str | Path],
    fmt: str,
    *,
    ds: str | None = None,
    engine: EngineName = "polars",
    run_id: str | None = None,
    model: str | None = None,
    build_id: str | None = None,
    trust_pickle: bool = False,
    spark_master: str | None = None,
    replace_partition: bool = False,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest `paths` (files or folders) of format `fmt` into the lake and return the checked report.

    Each input replaces the rows it wrote before; `replace_partition` also removes every other row of the
    partitions written (and of day `ds`). A run that loses a race for the same partitions is retried once.
    """
    spec = get_format(fmt)
    strategy = make_engine(engine, spark_master)
    files = expand_paths(paths, spec)
    opts = ReadOptions(
        ds=ds,
        trust_pickle=trust_pickle,
        limits=limits or Limits(),
        model=model or (default_model(spec, files) if spec.table == "item_embeddings" else None),
        build_id=build_id or (default_build(files) if spec.table == "item_sids" else None),
    )
    run_id = run_id or new_run_id()
    recover(lake)
    for attempt in (1, 2):
        try:
            return _ingest_once(lake, spec, files, opts, strategy, run_id, replace_partition, progress)
        except ConcurrentWriteError as exc:
            if attempt == 2:
                raise ConcurrentWriteError(
                    f"{exc}. The ingest was retried once and lost again; nothing of run {run_id} was committed. "
                    "Run the command again once the other ingest has finished."
                ) from None
    raise AssertionError("unreachable")


def _ingest_once(
    lake: Lake,
    spec: Format,
    files: Sequence[str],
    opts: ReadOptions,
    strategy: Engine,
    run_id: str,
    replace_partition: bool,
    progress: Progress | None,
) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport(spec.table, spec.name, strategy.name, run_id, [str(f) for f in files])
    keys = {str(f): source_key(spec.name, f) for f in files}
    root = lake.filesystem()[1]
    staging = f"{root}/_staging/{spec.table}/{run_id}"
    q_staging = f"{root}/_staging/quarantine/{run_id}"
    intent = journal.Intent(run_id, spec.table, staging=[staging, q_staging])
    journal.record(lake, intent)
    try:
        read_version = lake.version(spec.table)
        read_version = -1 if read_version is None else read_version
        job = Job(lake, spec, files, opts, staging, keys)
        staged = strategy.stage(job, report, progress)
        crash_point("after-staging")
        rejects = conform_rejects(staged.rejects, spec.table, run_id)
        report.rows_quarantined = rejects.height
        report.check()
        plan = plan_commit(job, report, staged, rejects, read_version, replace_partition, q_staging)
        journal.record(lake, plan_record(intent, plan))
        crash_point("after-journal")
        report.version = apply(lake, plan)
    except ConcurrentWriteError:  # nothing of this run was committed
        journal.clear(lake, intent)
        raise
    except BaseException:
        if intent.state == "writing":  # not planned yet: nothing to finish, only staging to drop
            journal.clear(lake, intent)
        raise
    journal.clear(lake, intent)
    if spec.table == "item_sids" and report.rows_written:
        levels = (
            lake.scan("item_sids")
            .filter(pl.col("build_id") == opts.build_id)
            .select(pl.col("codes").list.len().max())
            .collect()
            .item()
        )
        BuildRegistry(lake).record_imported(opts.build_id or "", report.files, levels, opts.codebook_size, run_id)
    report.seconds = time.perf_counter() - started
    return report

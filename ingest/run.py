"""Ingest source files into the lake: parse, validate, de-duplicate, stage Parquet, commit once.

Both engines (`ingest.polars_engine`, `ingest.spark_engine`) are strategies over one plan (`ingest.plan`):
the same readers, the same quarantine records and the same commit plan, so they produce identical tables.
A rerun of a source replaces exactly what that source wrote before (files are keyed by its identity: format,
normalised path and the partition values the call pins); whole partitions go only when asked. Data and
quarantine records are staged, planned in the run's journal, then committed (`lake.commit_plan`). Every record
is accounted for: read = written + quarantined.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import polars as pl

from builds.registry import BuildRegistry
from ingest.existing import against_table
from ingest.formats import ReadOptions, default_build, default_model, expand_paths, get_format
from ingest.plan import (
    Engine,
    IngestReport,
    Job,
    Progress,
    Replace,
    conform_rejects,
    identity_target,
    new_run_id,
    partitions_to_replace,
    plan_by_partition,
    plan_commit,
    replaced_files,
    staged_rows,
)
from ingest.polars_engine import PolarsEngine
from ingest.sources.limits import Limits
from lake import journal
from lake.commit_plan import apply, recover, staged_partitions
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
    replace_partition: Replace = False,
    force: bool = False,
    dedupe_against_table: bool = False,
    dry_run: bool = False,
    limits: Limits | None = None,
    progress: Progress | None = None,
    before_commit: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Ingest `paths` (files or folders) of format `fmt` into the lake and return the checked report.

    Each input's identity (format, path, and the model, build or `ds` the call pins) replaces the rows it wrote
    before. `replace_partition` also empties partitions: True for every one written (and day `ds`), refusing
    one that holds under 5% of the input's rows unless `force`; or the partitions named. With
    `dedupe_against_table`, rows whose key the touched partitions already hold are quarantined instead of
    written; `report.rows_existing` counts them either way. `dry_run` plans and commits nothing (the plan is in
    `report.plan`); `before_commit` sees the report with its plan just before the commit. A run that loses a
    race for the same partitions is retried once.
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
            return _ingest_once(
                lake,
                Job(lake, spec, files, opts, "", {}),
                strategy,
                run_id,
                Choices(replace_partition, force, dedupe_against_table, dry_run),
                progress,
                before_commit,
            )
        except ConcurrentWriteError as exc:
            if attempt == 2:
                raise ConcurrentWriteError(
                    f"{exc}. The ingest was retried once and lost again; nothing of run {run_id} was committed. "
                    "Run the command again once the other ingest has finished."
                ) from None
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Choices:
    """What the caller asked of the commit: partitions to empty, dedupe against the table, or only a plan."""

    replace: Replace
    force: bool
    dedupe: bool
    dry_run: bool


def _ingest_once(
    lake: Lake,
    request: Job,
    strategy: Engine,
    run_id: str,
    choices: Choices,
    progress: Progress | None,
    before_commit: Callable[[IngestReport], None] | None,
) -> IngestReport:
    started = time.perf_counter()
    spec, files, opts = request.fmt, request.files, request.opts
    report = IngestReport(spec.table, spec.name, strategy.name, run_id, [str(f) for f in files])
    target = identity_target(spec.table, opts)
    keys = {str(f): source_key(spec.name, f, target) for f in files}
    root = lake.filesystem()[1]
    staging = f"{root}/_staging/{spec.table}/{run_id}"
    q_staging = f"{root}/_staging/quarantine/{run_id}"
    claim = journal.Claim(lake, journal.Intent(run_id, spec.table, staging=[staging, q_staging]))
    try:
        read_version = lake.version(spec.table)
        read_version = -1 if read_version is None else read_version
        job = replace(request, staging=staging, keys=keys)
        staged = strategy.stage(job, report, progress)
        crash_point("after-staging")
        live = lake.files(spec.table, read_version) if read_version >= 0 else pl.DataFrame()
        added = staged_rows(job, staged.files)
        partitions = partitions_to_replace(job, added, choices.replace, choices.force)
        old = replaced_files(job, live, staged, partitions)
        kept = live.filter(~pl.col("path").is_in(old["path"].implode())) if live.height else live
        existing = against_table(job, staged, kept, choices.dedupe)
        report.rows_existing = existing.rows
        if existing.rejects.height:  # rows dropped: the staged files changed
            report.rows_written -= existing.rejects.height
            staged.partitions = staged_partitions(spec.table, staging, staged.files)
            added = staged_rows(job, staged.files)
        found = pl.concat([staged.rejects, existing.rejects], how="vertical_relaxed")
        rejects = conform_rejects(found, spec.table, run_id)
        report.rows_quarantined = rejects.height
        report.check()
        plan = plan_commit(job, report, staged, rejects, read_version, old, partitions, q_staging)
        report.plan = plan_by_partition(spec.table, added, old)
        if choices.dry_run:
            report.dry_run = True
            claim.release()
            report.seconds = time.perf_counter() - started
            return report
        if before_commit:
            before_commit(report)
        claim.advance("committing", asdict(plan))
        crash_point("after-journal")
        report.version = apply(lake, plan)
    except ConcurrentWriteError:  # nothing of this run was committed
        claim.release()
        raise
    except BaseException:
        if claim.intent.state == "writing":  # not planned yet: nothing to finish, only staging to drop
            claim.release()
        else:
            claim.stop()
        raise
    claim.release()
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

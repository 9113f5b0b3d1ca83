"""The plan both ingest engines share: files → records → rejects → commit.

An engine parses the files and stages valid rows as Parquet (`Staged`); everything else is common: the
report whose counts must add up, quarantine records for duplicates and for files rejected whole, and the
commit plan that adds the staged files and removes what the same inputs wrote before.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

from ingest.formats import Format, ReadOptions
from ingest.sources.records import REJECT_SCHEMA, reject_frame
from lake.catalog import table, today
from lake.commit_plan import CommitPlan, StagedWriter, files_of
from lake.lake import Lake
from lake.provenance import fingerprint, source_key

Progress = Callable[[int], None]


@dataclass
class IngestReport:
    """What one ingest did: counts that must add up, the rows its inputs had written before and were replaced,
    the partitions touched (and replaced whole, when asked) and the commit version."""

    table: str
    format: str
    engine: str
    run_id: str
    files: list[str]
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    blank_lines: int = 0
    missing_images: int = 0
    rows_replaced: int = 0
    partitions: list[dict[str, str]] = field(default_factory=list)
    replaced_partitions: list[dict[str, str]] = field(default_factory=list)
    empty_inputs: list[str] = field(default_factory=list)  # no valid row: what they wrote before is kept
    version: int | None = None
    seconds: float = 0.0

    def check(self) -> None:
        """Raise unless every record read was written or quarantined."""
        if self.rows_read != self.rows_written + self.rows_quarantined:
            raise RuntimeError(
                f"ingest of {self.files} lost records: read {self.rows_read}, wrote {self.rows_written}, "
                f"quarantined {self.rows_quarantined}"
            )

    def as_dict(self) -> dict:
        """Plain dict for metadata and JSON output."""
        return asdict(self)


@dataclass
class Staged:
    """What an engine staged: data files, quarantine records, valid rows per input, partitions written."""

    files: list[str]
    rejects: pl.DataFrame
    rows: dict[str, int]
    partitions: list[tuple]


@dataclass(frozen=True)
class Job:
    """One ingest as an engine sees it: the format, its files and options, the run and where to stage."""

    lake: Lake
    fmt: Format
    files: Sequence[str]  # local paths or object-store URIs
    opts: ReadOptions
    staging: str
    keys: dict[str, str]  # input file -> its source key (the folder its staged files go to)


class Engine(Protocol):
    """Parses a job's files, de-duplicates and stages the valid rows; fills the report's read/written counts."""

    name: str

    def stage(self, job: Job, report: IngestReport, progress: Progress | None) -> Staged:
        """Stage the job's rows under `job.staging` and return them with the records to quarantine."""
        ...


def new_run_id() -> str:
    """A fresh run id for ingests started outside Dagster."""
    return f"cli-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def duplicate_reason(keys: Sequence[str]) -> str:
    """The quarantine reason for a record whose keys repeat an earlier record of the same ingest."""
    return f"duplicate record (same {', '.join(keys)} as an earlier record)"


def whole_file_reject(path: str | Path, reason: str, ds: str | None) -> pl.DataFrame:
    """The one quarantine record of a file rejected whole (no line, no raw text)."""
    return reject_frame(path, [(None, None, reason)], ds or today())


def duplicates_to_rejects(dups: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Quarantine records for duplicate rows (columns source_file, line, the keys and maybe ds): the keys as
    raw text, in the same form whichever engine found them."""
    ds = pl.col("ds") if "ds" in dups.columns else pl.lit(today())
    raw = pl.concat_str(
        [
            pl.col(k).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            if dups.schema[k].is_temporal()
            else pl.col(k).cast(pl.String)
            for k in keys
        ],
        separator=",",
    )
    return dups.select(
        source_file=pl.col("source_file"),
        line=pl.col("line").cast(pl.Int64),
        raw=raw,
        reason=pl.lit(duplicate_reason(keys)),
        ds=ds,
    )


def conform_rejects(rejects: pl.DataFrame, table_name: str, run_id: str) -> pl.DataFrame:
    """Quarantine rows with every catalog column; a record without a day gets today's (UTC)."""
    now = dt.datetime.now(dt.UTC)
    return rejects.cast(REJECT_SCHEMA).with_columns(
        pl.col("ds").fill_null(now.date().isoformat()),
        pl.col("reason").fill_null("rejected"),
        table=pl.lit(table_name),
        run_id=pl.lit(run_id),
        quarantined_at=pl.lit(now, pl.Datetime("us", "UTC")),
    )


def plan_commit(
    job: Job,
    report: IngestReport,
    staged: Staged,
    rejects: pl.DataFrame,
    read_version: int,
    replace_partition: bool,
    q_staging: str,
) -> CommitPlan:
    """The run's commits: its staged files in, the same inputs' earlier files out (whole partitions if asked)."""
    lake, spec, keys, opts = job.lake, job.fmt, job.keys, job.opts
    tspec = table(spec.table)
    replacing = [k for f, k in keys.items() if staged.rows.get(f, 0)]
    report.empty_inputs = [f for f in keys if not staged.rows.get(f, 0)]
    partitions: list[dict[str, str]] = []
    if replace_partition and tspec.partition_by:
        written = {tuple(p) for p in staged.partitions}
        if opts.ds and "ds" in tspec.partition_by and tspec.partition_by != ("ds",):
            raise ValueError("--replace-partition with --ds needs a table partitioned by ds alone")
        if opts.ds and tspec.partition_by == ("ds",):
            written.add((opts.ds,))
        partitions = [dict(zip(tspec.partition_by, p, strict=True)) for p in sorted(written, key=str)]
    elif replace_partition:
        raise ValueError(f"--replace-partition: table {spec.table!r} has no partitions (it merges by key)")
    old = files_of(lake.files(spec.table, read_version) if read_version >= 0 else pl.DataFrame(), replacing, partitions)
    report.rows_replaced = int(old["num_records"].sum()) if old.height else 0
    touched = {tuple(p) for p in staged.partitions}
    if old.height and tspec.partition_by:
        touched |= set(old.select([f"partition.{c}" for c in tspec.partition_by]).iter_rows())
    report.partitions = [dict(zip(tspec.partition_by, p, strict=True)) for p in sorted(touched, key=str)]
    report.replaced_partitions = partitions
    q_writer = StagedWriter(lake.filesystem()[0], "quarantine", q_staging)
    for (source,), group in rejects.partition_by("source_file", as_dict=True).items():
        q_writer.write(group, keys.get(str(source)) or source_key(spec.name, str(source)))
    days = [{"table": spec.table, "ds": p["ds"]} for p in partitions if "ds" in p]
    quarantine = lake.files("quarantine")
    q_old = files_of(
        quarantine.filter(pl.col("partition.table") == spec.table) if quarantine.height else quarantine, replacing, days
    )
    return CommitPlan(
        spec.table,
        report.run_id,
        report.files,
        data_files=staged.files,
        data_remove=old["path"].to_list(),
        merge_keep=list(spec.keep_on_update) if spec.merge else None,
        quarantine_files=q_writer.close(),
        quarantine_remove=q_old["path"].to_list(),
        read_version=read_version,
        extra={"fingerprints": {f: fingerprint(f) for f in keys}, "replaced_partitions": partitions},
    )

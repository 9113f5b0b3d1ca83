"""The plan both ingest engines share: files → records → rejects → commit.

An engine parses the files and stages valid rows as Parquet (`Staged`); everything else is common: the
report whose counts must add up, quarantine records for duplicates and for files rejected whole, and the
commit plan that adds the staged files and removes what the same inputs wrote before.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow.parquet as pq

from ingest.formats import Format, ReadOptions
from ingest.sources.records import REJECT_SCHEMA, reject_frame
from lake.catalog import table, today
from lake.commit_plan import CommitPlan, StagedWriter, files_of, partition_id
from lake.lake import Lake, partition_values
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
    rows_existing: int = 0  # rows whose key the touched partitions already hold (from other sources)
    dry_run: bool = False
    plan: list[dict] = field(default_factory=list)  # per partition: rows it would add and remove
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
    keys: dict[str, str]  # input file -> its source identity's key (the folder its staged files go to)


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


def duplicates_to_rejects(dups: pl.DataFrame, keys: Sequence[str], reason: str | None = None) -> pl.DataFrame:
    """Quarantine records for duplicate rows (columns source_file, line, the keys and maybe ds): the keys as
    raw text, in the same form whichever engine found them; the reason names the keys unless given."""
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
        reason=pl.lit(reason or duplicate_reason(keys)),
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


class ReplaceRefused(ValueError):
    """`--replace-partition` would empty a partition that holds only a sliver of the input; nothing was committed."""


REPLACE_MIN_SHARE = 0.05  # a partition with a smaller share of the input's rows is not replaced unless named
Replace = bool | Sequence[str]  # True: every partition written (checked); names: exactly those partitions


def identity_target(table_name: str, opts: ReadOptions) -> dict[str, str]:
    """The partition values a call pins (`--model`, `--build-id`, `--ds` of a ds-partitioned table): part of
    each input's source identity."""
    pinned = {"model": opts.model, "build_id": opts.build_id, "ds": opts.ds}
    return {c: v for c in table(table_name).partition_by if (v := pinned.get(c)) is not None}


def staged_rows(job: Job, files: Sequence[str]) -> dict[tuple, int]:
    """Rows per partition of the staged `files`, from their Parquet footers."""
    fs, spec = job.lake.filesystem()[0], table(job.fmt.table)
    counts: dict[tuple, int] = {}
    for path in files:
        with fs.open_input_file(path) as handle:
            rows = pq.ParquetFile(handle).metadata.num_rows
        part = tuple(partition_values(path[len(job.staging) :], spec)[0][c] for c in spec.partition_by)
        counts[part] = counts.get(part, 0) + rows
    return counts


def parse_partition(text: str, partition_by: Sequence[str]) -> tuple:
    """A partition named on the command line: `VALUE` for a table with one partition column, else `col=value,...`."""
    if "=" not in text and len(partition_by) == 1:
        values = {partition_by[0]: text}
    else:
        values = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
    if set(values) != set(partition_by):
        raise ValueError(f"--replace-partition {text!r}: name every partition column ({', '.join(partition_by)})")
    if "ds" in values:
        try:
            dt.date.fromisoformat(values["ds"])
        except ValueError:
            raise ValueError(f"--replace-partition {text!r}: ds must be a day, YYYY-MM-DD") from None
    return tuple(values[c] for c in partition_by)


def partitions_to_replace(job: Job, added: Mapping[tuple, int], replace: Replace, force: bool) -> list[dict[str, str]]:
    """The partitions a call empties: those named, or (True) every one it writes and `--ds`; a written partition
    with less than REPLACE_MIN_SHARE of the input's rows is refused unless `force`."""
    tspec, ds = table(job.fmt.table), job.opts.ds
    if not replace:
        return []
    if not tspec.partition_by:
        raise ValueError(f"--replace-partition: table {tspec.name!r} has no partitions (it merges by key)")
    if replace is True:
        if ds and "ds" in tspec.partition_by and tspec.partition_by != ("ds",):
            raise ValueError("--replace-partition with --ds needs a table partitioned by ds alone")
        chosen = set(added) | ({(ds,)} if ds and tspec.partition_by == ("ds",) else set())
        total = sum(added.values())
        slivers = sorted((p for p in added if (ds,) != p and added[p] < REPLACE_MIN_SHARE * total), key=str)
        if slivers and not force:
            names = "; ".join(f"{_name(tspec.partition_by, p)} ({added[p]:,} of {total:,} rows)" for p in slivers)
            kept = sorted(set(added) - set(slivers), key=str)
            keep = ", ".join(_name(tspec.partition_by, p, bare=True) for p in kept)
            raise ReplaceRefused(
                f"--replace-partition would empty {names}, where this input has under {REPLACE_MIN_SHARE:.0%} of its "
                f"rows; nothing was committed. Name the partitions to replace (--replace-partition {keep or '...'}) "
                "or pass --force to replace them all"
            )
    else:
        chosen = {parse_partition(text, tspec.partition_by) for text in replace}
    return [dict(zip(tspec.partition_by, p, strict=True)) for p in sorted(chosen, key=str)]


def _name(columns: Sequence[str], values: tuple, bare: bool = False) -> str:
    if bare and len(columns) == 1:
        return str(values[0])
    return ",".join(f"{c}={v}" for c, v in zip(columns, values, strict=True))


def replaced_files(job: Job, live: pl.DataFrame, staged: Staged, partitions: Sequence[dict[str, str]]) -> pl.DataFrame:
    """The live files a call removes: what each input's identity wrote before (anywhere), what the same input
    wrote under another identity into a partition this call writes (the path-only key of older lakes, or a
    `--ds` load of the day), and every file of the partitions replaced whole. Inputs without a valid row
    remove nothing."""
    spec, tspec = job.fmt, table(job.fmt.table)
    inputs = [f for f in job.keys if staged.rows.get(f, 0)]
    within: dict[frozenset, set[str]] = {}
    for part in staged.partitions:
        values = dict(zip(tspec.partition_by, part, strict=True))
        within[partition_id(values.items())] = {source_key(spec.name, f, t) for f in inputs for t in ({}, values)}
    return files_of(live, [job.keys[f] for f in inputs], partitions, within)


def plan_commit(
    job: Job,
    report: IngestReport,
    staged: Staged,
    rejects: pl.DataFrame,
    read_version: int,
    old: pl.DataFrame,
    partitions: Sequence[dict[str, str]],
    q_staging: str,
) -> CommitPlan:
    """The run's commits: its staged files in, the files `old` out, quarantine records swapped likewise."""
    lake, spec, keys = job.lake, job.fmt, job.keys
    tspec = table(spec.table)
    report.empty_inputs = [f for f in keys if not staged.rows.get(f, 0)]
    report.rows_replaced = int(old["num_records"].sum()) if old.height else 0
    touched = {tuple(p) for p in staged.partitions}
    if old.height and tspec.partition_by:
        touched |= set(old.select([f"partition.{c}" for c in tspec.partition_by]).iter_rows())
    report.partitions = [dict(zip(tspec.partition_by, p, strict=True)) for p in sorted(touched, key=str)]
    report.replaced_partitions = list(partitions)
    q_writer = StagedWriter(lake.filesystem()[0], "quarantine", q_staging)
    for (source,), group in rejects.partition_by("source_file", as_dict=True).items():
        q_writer.write(group, keys.get(str(source)) or source_key(spec.name, str(source)))
    replacing = [keys[f] for f in keys if staged.rows.get(f, 0)]
    days = [{"table": spec.table, "ds": p["ds"]} for p in partitions if "ds" in p]
    legacy = {source_key(spec.name, f) for f in keys if staged.rows.get(f, 0)} - set(replacing)
    mine = {partition_id([("table", spec.table), ("ds", d)]): legacy for d in rejects["ds"].unique()} if legacy else {}
    quarantine = lake.files("quarantine")
    q_old = files_of(
        quarantine.filter(pl.col("partition.table") == spec.table) if quarantine.height else quarantine,
        replacing,
        days,
        mine,
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
        extra={"fingerprints": {f: fingerprint(f) for f in keys}, "replaced_partitions": list(partitions)},
    )


def plan_by_partition(
    table_name: str, added: Mapping[tuple, int], old: pl.DataFrame
) -> list[dict[str, dict[str, str] | int]]:
    """What a commit would do per partition: rows added and rows removed (a dry run's plan), sorted."""
    tspec = table(table_name)
    removed: dict[tuple, int] = {}
    for row in old.iter_rows(named=True):
        part = tuple(row[f"partition.{c}"] for c in tspec.partition_by)
        removed[part] = removed.get(part, 0) + int(row["num_records"])
    return [
        {
            "partition": dict(zip(tspec.partition_by, p, strict=True)),
            "add": added.get(p, 0),
            "remove": removed.get(p, 0),
        }
        for p in sorted(set(added) | set(removed), key=str)
    ]

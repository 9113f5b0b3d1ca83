"""Ingest source files into the lake: parse, validate, de-duplicate, stage Parquet, commit once.

Both engines (polars here, Spark in `lake.spark_ingest`) share the readers, the staging writer and the
commit plan, so they produce identical tables. A rerun of an input replaces exactly what that input wrote
before (files are keyed by format and normalised path); whole partitions go only when asked. Data and
quarantine records are staged, planned in the run's journal, then committed (`lake.commit_plan`). Every
record is accounted for: read = written + quarantined.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from lake import journal
from lake.catalog import table
from lake.commit_plan import CommitPlan, StagedWriter, apply, files_of, plan_record, recover
from lake.faults import crash_point
from lake.formats import (
    Format,
    ReadOptions,
    default_build,
    default_model,
    expand_paths,
    get_format,
    read_file,
)
from lake.hashing import row_hashes
from lake.lake import ConcurrentWriteError, Lake
from lake.provenance import fingerprint, source_key
from lake.sources.limits import Limits
from lake.sources.lines import RejectedFile
from lake.sources.records import REJECT_SCHEMA, Parsed, reject_frame

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
                f"quarantined {self.rows_quarantined}")

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


def new_run_id() -> str:
    """A fresh run id for ingests started outside Dagster."""
    return f"cli-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def duplicate_reason(keys: Sequence[str]) -> str:
    """The quarantine reason for a record whose keys repeat an earlier record of the same ingest."""
    return f"duplicate record (same {', '.join(keys)} as an earlier record)"


class Deduplicator:
    """Remembers 64-bit hashes of the keys seen so far; later records with a seen key are duplicates."""

    def __init__(self, keys: Sequence[str]):
        self.keys = list(keys)
        self.seen = np.empty(0, dtype=np.uint64)

    def _lookup(self, ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Insertion points of the sorted hashes `ordered` among the seen ones, and which are already seen."""
        pos = np.searchsorted(self.seen, ordered)  # sorted queries walk the seen array in order: cache-friendly
        known = self.seen[np.minimum(pos, len(self.seen) - 1)] == ordered if len(self.seen) else pos < 0
        return pos, known

    def _remember(self, ordered: np.ndarray, pos: np.ndarray) -> None:
        """Merge new sorted hashes into the seen ones in linear time, given their insertion points."""
        slots = pos + np.arange(len(ordered))
        merged = np.empty(len(self.seen) + len(ordered), dtype=np.uint64)
        fresh = np.zeros(len(merged), dtype=bool)
        fresh[slots] = True
        merged[slots] = ordered
        merged[~fresh] = self.seen
        self.seen = merged

    def split(self, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(rows seen for the first time, duplicates of an earlier row of this block or of earlier blocks)."""
        if not self.keys or not rows.height:
            return rows, rows.clear()
        values = row_hashes(rows, self.keys, seed=7)
        ordered = np.sort(values)
        if not (ordered[1:] == ordered[:-1]).any():
            pos, known = self._lookup(ordered)
            if not known.any():  # the common case: nothing repeats
                self._remember(ordered, pos)
                return rows, rows.clear()
        order = np.argsort(values, kind="stable")  # stable: the first occurrence comes first
        ordered = values[order]
        pos, known = self._lookup(ordered)
        first = np.concatenate([[True], ordered[1:] != ordered[:-1]]) & ~known
        keep = np.empty(len(values), dtype=bool)
        keep[order] = first
        self._remember(ordered[first], pos[first])
        return rows.filter(pl.Series(keep)), rows.filter(pl.Series(~keep))


def whole_file_reject(path: str | Path, reason: str, ds: str | None) -> pl.DataFrame:
    """The one quarantine record of a file rejected whole (no line, no raw text)."""
    return reject_frame(path, [(None, None, reason)], ds or dt.date.today().isoformat())


def duplicates_to_rejects(dups: pl.DataFrame, keys: Sequence[str], source: str) -> pl.DataFrame:
    """Quarantine records for duplicate rows (their keys as raw text)."""
    ds = pl.col("ds") if "ds" in dups.columns else pl.lit(dt.date.today().isoformat())
    raw = pl.concat_str([pl.col(k).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") if dups.schema[k].is_temporal()
                         else pl.col(k).cast(pl.String) for k in keys], separator=",")
    return dups.select(source_file=pl.lit(source), line=pl.col("line").cast(pl.Int64), raw=raw,
                       reason=pl.lit(duplicate_reason(keys)), ds=ds)


def register_imported_build(lake: Lake, build_id: str, files: Sequence[str], levels: int, size: int,
                            run_id: str) -> None:
    """Record an imported (published AL-GR) semantic-ID build in `sid_builds`."""
    row = pl.DataFrame({
        "build_id": [build_id], "method": ["imported"], "levels": [levels], "sizes": [[size] * levels],
        "inputs": [json.dumps({"files": list(files)})], "seed": [None], "status": ["imported"],
        "metrics": [None], "created_at": [dt.datetime.now(dt.UTC)], "run_id": [run_id],
    }, schema_overrides={"levels": pl.Int16, "sizes": pl.List(pl.Int32), "seed": pl.Int64})
    lake.merge("sid_builds", row, run_id=run_id, sources=files)


def ingest(lake: Lake, paths: Sequence[str | Path], fmt: str, *, ds: str | None = None, engine: str = "polars",
           run_id: str | None = None, model: str | None = None, build_id: str | None = None,
           trust_pickle: bool = False, spark_master: str | None = None, replace_partition: bool = False,
           limits: Limits | None = None, progress: Progress | None = None) -> IngestReport:
    """Ingest `paths` (files or folders) of format `fmt` into the lake and return the checked report.

    Each input replaces the rows it wrote before; `replace_partition` also removes every other row of the
    partitions written (and of day `ds`). A run that loses a race for the same partitions is retried once.
    """
    spec = get_format(fmt)
    if engine not in ("polars", "spark"):
        raise ValueError(f"unknown engine {engine!r}; choose polars or spark")
    files = expand_paths(paths, spec)
    opts = ReadOptions(ds=ds, trust_pickle=trust_pickle, limits=limits or Limits(),
                       model=model or (default_model(spec, files) if spec.table == "item_embeddings" else None),
                       build_id=build_id or (default_build(files) if spec.table == "item_sids" else None))
    run_id = run_id or new_run_id()
    recover(lake)
    for attempt in (1, 2):
        try:
            return _ingest_once(lake, spec, files, opts, engine, run_id, replace_partition, spark_master,
                                progress)
        except ConcurrentWriteError as exc:
            if attempt == 2:
                raise ConcurrentWriteError(
                    f"{exc}. The ingest was retried once and lost again; nothing of run {run_id} was committed. "
                    "Run the command again once the other ingest has finished.") from None
    raise AssertionError("unreachable")


def _ingest_once(lake: Lake, spec: Format, files: Sequence[Path], opts: ReadOptions, engine: str, run_id: str,
                 replace_partition: bool, spark_master: str | None, progress: Progress | None) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport(spec.table, spec.name, engine, run_id, [str(f) for f in files])
    keys = {str(f): source_key(spec.name, f) for f in files}
    root = lake.filesystem()[1]
    staging = f"{root}/_staging/{spec.table}/{run_id}"
    q_staging = f"{root}/_staging/quarantine/{run_id}"
    intent = journal.Intent(run_id, spec.table, staging=[staging, q_staging])
    journal.record(lake, intent)
    try:
        read_version = lake.version(spec.table)
        read_version = -1 if read_version is None else read_version
        if engine == "spark":
            from lake.spark_ingest import ingest_with_spark

            staged = ingest_with_spark(lake, spec, files, opts, report, staging, keys, master=spark_master)
        else:
            staged = _ingest_with_polars(lake, spec, files, opts, report, staging, keys, progress)
        crash_point("after-staging")
        rejects = _conform_rejects(staged.rejects, spec.table, run_id)
        report.rows_quarantined = rejects.height
        report.check()
        plan = _plan(lake, spec, report, staged, rejects, keys, opts, read_version, replace_partition, q_staging)
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
        levels = (lake.scan("item_sids").filter(pl.col("build_id") == opts.build_id)
                  .select(pl.col("codes").list.len().max()).collect().item())
        register_imported_build(lake, opts.build_id or "", report.files, levels, opts.codebook_size, run_id)
    report.seconds = time.perf_counter() - started
    return report


def _conform_rejects(rejects: pl.DataFrame, table_name: str, run_id: str) -> pl.DataFrame:
    """Quarantine rows with every catalog column; a record without a day gets today's."""
    now = dt.datetime.now(dt.UTC)
    return rejects.cast(REJECT_SCHEMA).with_columns(  # type: ignore[arg-type]
        pl.col("ds").fill_null(now.date().isoformat()), pl.col("reason").fill_null("rejected"),
        table=pl.lit(table_name), run_id=pl.lit(run_id), quarantined_at=pl.lit(now, pl.Datetime("us", "UTC")))


def _plan(lake: Lake, spec: Format, report: IngestReport, staged: Staged, rejects: pl.DataFrame,
          keys: dict[str, str], opts: ReadOptions, read_version: int, replace_partition: bool,
          q_staging: str) -> CommitPlan:
    """The run's commits: its staged files in, the same inputs' earlier files out (whole partitions if asked)."""
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
    old = files_of(lake.files(spec.table, read_version) if read_version >= 0 else pl.DataFrame(), replacing,
                   partitions)
    report.rows_replaced = int(old["num_records"].sum()) if old.height else 0
    touched = {tuple(p) for p in staged.partitions}
    if old.height and tspec.partition_by:
        touched |= set(old.select([f"partition.{c}" for c in tspec.partition_by]).iter_rows())
    report.partitions = [dict(zip(tspec.partition_by, p, strict=True)) for p in sorted(touched, key=str)]
    report.replaced_partitions = partitions
    q_writer = StagedWriter(lake, "quarantine", q_staging)
    for (source,), group in rejects.partition_by("source_file", as_dict=True).items():
        q_writer.write(group, keys.get(str(source)) or source_key(spec.name, str(source)))
    days = [{"table": spec.table, "ds": p["ds"]} for p in partitions if "ds" in p]
    quarantine = lake.files("quarantine")
    q_old = files_of(quarantine.filter(pl.col("partition.table") == spec.table) if quarantine.height else quarantine,
                     replacing, days)
    return CommitPlan(
        spec.table, report.run_id, report.files, data_files=staged.files, data_remove=old["path"].to_list(),
        merge_keep=list(spec.keep_on_update) if spec.merge else None, quarantine_files=q_writer.close(),
        quarantine_remove=q_old["path"].to_list(), read_version=read_version,
        extra={"fingerprints": {f: fingerprint(Path(f)) for f in keys}, "replaced_partitions": partitions})


def _ingest_with_polars(lake: Lake, spec: Format, files: Sequence[Path], opts: ReadOptions, report: IngestReport,
                        staging: str, keys: dict[str, str], progress: Progress | None) -> Staged:
    tspec = table(spec.table)
    dedup = Deduplicator(spec.dedup)
    writer = StagedWriter(lake, spec.table, staging)
    rejects: list[pl.DataFrame] = [pl.DataFrame(schema=REJECT_SCHEMA)]
    valid: dict[str, int] = {}
    # Parsing the next block overlaps with writing the previous one (both release the GIL).
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidforge-write")
    pending: deque[Future] = deque()
    try:
        for path in files:
            key = keys[str(path)]
            before = (report.rows_read, report.rows_written, len(rejects))
            block: Parsed
            try:
                for block in read_file(spec, path, opts):
                    report.rows_read += block.records
                    valid[str(path)] = valid.get(str(path), 0) + block.rows.height
                    report.blank_lines += block.blank_lines
                    report.missing_images += block.missing_images
                    rows, dups = dedup.split(block.rows)
                    rejects += [block.rejects, duplicates_to_rejects(dups, spec.dedup, str(path))] if dups.height \
                        else [block.rejects]
                    rows = rows.with_columns(run_id=pl.lit(report.run_id)).select(tspec.schema.names)
                    report.rows_written += rows.height
                    pending.append(pool.submit(writer.write, rows, key))
                    if len(pending) > 1:
                        pending.popleft().result()
                    if progress:
                        progress(block.records)
            except RejectedFile as exc:  # the whole file goes to quarantine, none of its rows to the table
                while pending:
                    pending.popleft().result()
                writer.discard(key)
                report.rows_read, report.rows_written = before[0] + 1, before[1]
                valid.pop(str(path), None)
                rejects[before[2]:] = [whole_file_reject(path, exc.reason, opts.ds)]
        for future in pending:
            future.result()
    finally:
        pool.shutdown()
        staged = writer.close()
    return Staged(staged, pl.concat(rejects, how="vertical_relaxed"), valid, writer.partitions)

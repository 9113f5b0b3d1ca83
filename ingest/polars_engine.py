"""The polars engine: files parsed block by block in this process, de-duplicated by key hashes, staged while
the next block parses."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import polars as pl

from ingest.plan import IngestReport, Job, Progress, Staged, duplicates_to_rejects, whole_file_reject
from ingest.sources.lines import RejectedFile
from ingest.sources.records import REJECT_SCHEMA, Parsed
from lake.catalog import table
from lake.commit_plan import StagedWriter
from lake.hashing import row_hashes


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


class PolarsEngine:
    """Ingest on one machine: parsing the next block overlaps with writing the previous one."""

    name = "polars"

    def stage(self, job: Job, report: IngestReport, progress: Progress | None) -> Staged:
        """Parse, de-duplicate and stage every file of `job`; a file rejected whole leaves no row behind."""
        spec, opts = job.fmt, job.opts
        tspec = table(spec.table)
        dedup = Deduplicator(spec.dedup)
        writer = StagedWriter(job.lake.filesystem()[0], spec.table, job.staging)
        rejects: list[pl.DataFrame] = [pl.DataFrame(schema=REJECT_SCHEMA)]
        valid: dict[str, int] = {}
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidforge-write")  # both release the GIL
        pending: deque[Future] = deque()
        try:
            for path in job.files:
                key = job.keys[str(path)]
                before = (report.rows_read, report.rows_written, len(rejects))
                block: Parsed
                try:
                    for block in spec.read(path, opts):
                        report.rows_read += block.records
                        valid[str(path)] = valid.get(str(path), 0) + block.rows.height
                        report.blank_lines += block.blank_lines
                        report.missing_images += block.missing_images
                        rows, dups = dedup.split(block.rows)
                        rejects.append(block.rejects)
                        if dups.height:
                            rejects.append(
                                duplicates_to_rejects(dups.with_columns(source_file=pl.lit(str(path))), spec.dedup)
                            )
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
                    rejects[before[2] :] = [whole_file_reject(path, exc.reason, opts.ds)]
            for future in pending:
                future.result()
        finally:
            pool.shutdown()
            staged = writer.close()
        return Staged(staged, pl.concat(rejects, how="vertical_relaxed"), valid, writer.partitions)

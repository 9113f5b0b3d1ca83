"""Lake maintenance: finish or clean up killed runs, and remove what no live version needs any more.

`vacuum` removes table files that no Delta version within the retention period references (and files
never committed at all), staging left by runs that are gone, and published dataset versions that were
never registered (a publish killed before its registration) once they are older than the retention.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow.fs as pafs
from deltalake import DeltaTable

from lake import journal
from lake.catalog import TABLES
from lake.commit_plan import recover
from lake.lake import Lake

DEFAULT_RETENTION_HOURS = 168


@dataclass
class VacuumReport:
    """What a vacuum removed (or, with dry_run, would remove)."""

    dry_run: bool
    retention_hours: float
    recovered_runs: list[str] = field(default_factory=list)
    table_files: dict[str, list[str]] = field(default_factory=dict)
    staging: list[str] = field(default_factory=list)
    published_versions: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        """How many files and folders were (or would be) removed."""
        return sum(map(len, self.table_files.values())) + len(self.staging) + len(self.published_versions)


def vacuum(lake: Lake, *, retention_hours: float = DEFAULT_RETENTION_HOURS, dry_run: bool = False) -> VacuumReport:
    """Vacuum every table, stale staging and unregistered published versions of `lake`."""
    report = VacuumReport(dry_run, retention_hours)
    if not dry_run:
        report.recovered_runs = recover(lake)
    for name in TABLES:
        if lake.exists(name):
            delta = DeltaTable(lake.uri(name), storage_options=lake.storage_options)
            removed = delta.vacuum(
                retention_hours=int(retention_hours), dry_run=dry_run, enforce_retention_duration=False, full=True
            )
            if removed:
                report.table_files[name] = sorted(removed)
    fs, root = lake.filesystem()
    report.staging = _stale_staging(lake, fs, f"{root}/_staging")
    report.published_versions = _unregistered_versions(lake, fs, f"{root}/published", retention_hours)
    if not dry_run:
        for folder in report.staging + report.published_versions:
            fs.delete_dir(folder)
    return report


def _stale_staging(lake: Lake, fs: pafs.FileSystem, staging: str) -> list[str]:
    """Run folders under `_staging/<table>/` that no pending run's journal claims."""
    if fs.get_file_info(staging).type != pafs.FileType.Directory:
        return []
    claimed = {path for intent in journal.pending(lake) for path in intent.staging}
    stale = []
    for table_dir in fs.get_file_info(pafs.FileSelector(staging)):
        if table_dir.type != pafs.FileType.Directory or table_dir.base_name == journal.FOLDER[1]:
            continue
        stale += [
            run.path
            for run in fs.get_file_info(pafs.FileSelector(table_dir.path))
            if run.type == pafs.FileType.Directory and run.path not in claimed
        ]
    return sorted(stale)


def _unregistered_versions(lake: Lake, fs: pafs.FileSystem, published: str, retention_hours: float) -> list[str]:
    """Dataset version folders that `published_datasets` does not list (by dataset and version, wherever its
    path was registered), older than the retention."""
    if fs.get_file_info(published).type != pafs.FileType.Directory:
        return []
    listed = lake.scan("published_datasets").select("dataset", "version", "path").collect()
    registered: set[tuple[str, ...]] = {(d, v) for d, v, _ in listed.iter_rows()}
    registered |= {tuple(lake.published_path(p).rsplit("/", 2)[-2:]) for p in listed["path"]}
    cutoff = time.time() - retention_hours * 3600
    found = []
    for dataset in fs.get_file_info(pafs.FileSelector(published)):
        if dataset.type != pafs.FileType.Directory:
            continue
        for version in fs.get_file_info(pafs.FileSelector(dataset.path)):
            if (
                version.type == pafs.FileType.Directory
                and (dataset.base_name, version.base_name) not in registered
                and _newest_mtime(fs, version.path) < cutoff
            ):
                found.append(version.path)
    return sorted(found)


def _newest_mtime(fs: pafs.FileSystem, folder: str) -> float:
    """The newest modification time of the files in `folder` (of the folder itself when it has none)."""
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True))
    times = [i.mtime.timestamp() for i in infos if i.type == pafs.FileType.File and i.mtime is not None]
    own = fs.get_file_info(folder).mtime
    return max(times, default=own.timestamp() if own is not None else 0.0)

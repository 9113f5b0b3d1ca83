"""`Lake`: the one entry point to the Delta tables, for reads (Polars), writes and commits."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import AddAction, RemoveAction

from lake import storage
from lake.catalog import TABLES, TableSpec, table
from lake.delta_paths import file_location, file_path, folder_value, partition_folder
from lake.frames import to_frame
from lake.provenance import SOURCE_FOLDER
from lake.settings import DEFAULT_LAKE
from lake.stats import parquet_stats

ArrowData: TypeAlias = pa.Table | pa.RecordBatchReader | pl.DataFrame
HISTORY_SCHEMA = pl.Schema(
    {
        "version": pl.Int64(),
        "timestamp": pl.Datetime("ms", "UTC"),
        "operation": pl.String(),
        "run_id": pl.String(),
        "sources": pl.List(pl.String),
        "metadata": pl.String(),
    }
)


class ConcurrentWriteError(RuntimeError):
    """Another writer committed to the same partitions after this one read the table; nothing was committed."""


def sql_literal(value: object) -> str:
    """A value quoted as a Delta SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def partition_predicate(partitions: Iterable[Mapping[str, str]]) -> str:
    """A Delta SQL predicate matching any of the given partitions, e.g. `(ds = '2025-01-01')`."""
    clauses = ["(" + " AND ".join(f"{k} = {sql_literal(v)}" for k, v in part.items()) + ")" for part in partitions]
    return " OR ".join(clauses) if clauses else "false"


class Lake:
    """The lake root and its tables: `Lake("./data/lake").scan("interactions").collect()`.

    Reads go through `pl.scan_delta`; writes are idempotent (partition replace, merge by key) and
    every commit carries the run id and source files in its commit metadata.
    """

    def __init__(self, root: str | Path = DEFAULT_LAKE, storage_options: dict[str, str] | None = None):
        self.root = storage.normalize(root)
        self.storage_options = storage_options

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    # -- locations ---------------------------------------------------------------------------
    def uri(self, name: str) -> str:
        """Location of table `name` (a local path or an object-store URI)."""
        return f"{self.root}/{table(name).name}"

    def path(self, *parts: str) -> str:
        """A location under the lake root for non-table files (staging, reports, published data)."""
        return "/".join([self.root, *parts])

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """The pyarrow filesystem of the lake (with its storage options) and the root path inside it."""
        return storage.filesystem(self.root, self.storage_options)

    # -- reads -------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        """Whether table `name` has been created."""
        return DeltaTable.is_deltatable(self.uri(name), storage_options=self.storage_options)

    def delta(self, name: str) -> DeltaTable:
        """The DeltaTable for `name`, created empty with its catalog schema on first use."""
        spec = table(name)
        if not self.exists(name):
            try:
                DeltaTable.create(
                    self.uri(name),
                    spec.schema,
                    mode="ignore",
                    partition_by=list(spec.partition_by) or None,
                    name=spec.name,
                    description=spec.description,
                    storage_options=self.storage_options,
                )
            except (CommitFailedError, DeltaError):
                if not self.exists(name):  # another writer created it at the same moment: use theirs
                    raise
        return DeltaTable(self.uri(name), storage_options=self.storage_options)

    def scan(self, name: str, *, version: int | dt.datetime | None = None) -> pl.LazyFrame:
        """Lazy Polars scan of table `name`, optionally as of a Delta version or a timestamp."""
        spec = table(name)
        if not self.exists(name):
            return to_frame(spec.schema.empty_table()).lazy()
        if version is not None:
            self._check_version(name, version)
        return pl.scan_delta(self.uri(name), version=version, storage_options=self.storage_options)

    def _check_version(self, name: str, version: int | dt.datetime) -> None:
        """A ValueError naming the versions `name` has, for a version or a time it does not have."""
        if isinstance(version, dt.datetime):
            when = version if version.tzinfo else version.replace(tzinfo=dt.UTC)
            first: dt.datetime = self.history(name)["timestamp"].min()  # type: ignore[assignment]
            if when < first:
                raise ValueError(f"{name} was created at {first:%Y-%m-%d %H:%M:%S} UTC, after {when:%Y-%m-%d %H:%M:%S}")
            return
        newest = self._written_version(name)
        if not 0 <= version <= newest:
            raise ValueError(f"{name} has versions 0–{newest}; there is no version {version}")

    def version(self, name: str) -> int | None:
        """Current Delta version of `name`, or None when the table does not exist yet."""
        return DeltaTable(self.uri(name), storage_options=self.storage_options).version() if self.exists(name) else None

    def _written_version(self, name: str) -> int:
        """The version a write just made (the table exists after any write)."""
        version = self.version(name)
        if version is None:
            raise RuntimeError(f"table {name!r} does not exist after a write to {self.uri(name)}")
        return version

    def history(self, name: str, limit: int | None = None) -> pl.DataFrame:
        """Commits of `name`, newest first: version, timestamp (UTC), operation, run_id, sources (the files the
        commit ingested) and the rest of sidforge's commit metadata as a JSON object (`metadata`)."""
        commits = (
            DeltaTable(self.uri(name), storage_options=self.storage_options).history(limit) if self.exists(name) else []
        )
        rows = [
            {
                "version": c["version"],
                "timestamp": dt.datetime.fromtimestamp(c["timestamp"] / 1000, dt.UTC),
                "operation": c.get("operation"),
                "run_id": c.get("sidforge.run_id"),
                "sources": json.loads(c.get("sidforge.sources", "[]")),
                "metadata": json.dumps(
                    {k.removeprefix("sidforge."): v for k, v in c.items() if k.startswith("sidforge.")}, sort_keys=True
                ),
            }
            for c in commits
            if c.get("version", -1) >= 0  # a commit being written by another process can show no version yet
        ]
        return pl.DataFrame(rows, schema=HISTORY_SCHEMA).sort("version", descending=True)

    def files(self, name: str, version: int | None = None) -> pl.DataFrame:
        """The live data files of `name` (path, size, records, partition values), optionally at a version."""
        if not self.exists(name):
            return pl.DataFrame()
        return pl.DataFrame(
            DeltaTable(self.uri(name), version=version, storage_options=self.storage_options).get_add_actions(
                flatten=True
            )
        )

    def file_uris(self, name: str) -> list[str]:
        """Absolute locations of the live files of `name` (what Spark must read, never a listing)."""
        files = self.files(name)
        return [file_location(self.uri(name), p) for p in files["path"]] if files.height else []

    def sql(self, query: str) -> pl.DataFrame:
        """Run Polars SQL with every existing table registered under its name."""
        ctx = pl.SQLContext({name: self.scan(name) for name in TABLES if self.exists(name)})
        return ctx.execute(query, eager=True)

    def published_dataset(self, name: str = "gr", build_id: str | None = None) -> str:
        """Path of the latest registered version of published dataset `name` (of `build_id` when given)."""
        versions = self.scan("published_datasets").filter(pl.col("dataset") == name)
        if build_id is not None:
            versions = versions.filter(pl.col("build_id") == build_id)
        latest = versions.sort("created_at").select("path").collect()
        if not latest.height:
            which = f" of build {build_id!r}" if build_id is not None else ""
            raise LookupError(
                f"no published dataset {name!r}{which} in {self.root}; run `sidforge publish` or the "
                "gr_training_data asset first"
            )
        return self.published_path(latest["path"][-1])

    def published_path(self, registered: str) -> str:
        """Where a `published_datasets` path lies now: relative paths (how versions are registered) under this
        root; an absolute one from before, under a root the lake was moved from, by its `published/...` part."""
        if not storage.is_uri(registered) and not registered.startswith("/"):
            return self.path(registered)
        if registered.startswith(f"{self.root}/"):
            return registered
        _, found, rest = registered.rpartition("/published/")
        return self.path("published", rest) if found else registered

    def row_count(self, name: str) -> int:
        """Rows of table `name`, from the record counts in its Delta log (no data file is read)."""
        files = self.files(name)
        return int(files["num_records"].sum()) if files.height else 0

    def tables(self) -> pl.DataFrame:
        """One row per catalog table: version, rows, files and bytes (zeros when not created)."""
        rows = []
        for name, spec in TABLES.items():
            files = self.files(name)
            rows.append(
                {
                    "table": name,
                    "version": self.version(name),
                    "rows": int(files["num_records"].sum()) if files.height else 0,
                    "files": files.height,
                    "bytes": int(files["size_bytes"].sum()) if files.height else 0,
                    "partitioned_by": ",".join(spec.partition_by),
                }
            )
        return pl.DataFrame(rows, schema_overrides={"version": pl.Int64})

    # -- writes ------------------------------------------------------------------------------
    @staticmethod
    def _commit_properties(
        run_id: str,
        sources: Sequence[str],
        app_id: str | None = None,
        extra: Mapping[str, object] | None = None,
        retries: int | None = None,
    ) -> CommitProperties:
        meta: dict[str, object] = {"sidforge.run_id": run_id, "sidforge.sources": json.dumps(list(sources))}
        meta.update({f"sidforge.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in (extra or {}).items()})
        txns = [Transaction(app_id, 1, int(time.time() * 1000))] if app_id else None
        return CommitProperties(custom_metadata=meta, app_transactions=txns, max_commit_retries=retries)

    @staticmethod
    def conform(spec: TableSpec, data: ArrowData) -> pa.Table:
        """Data as an Arrow table with exactly the catalog schema (column order and types)."""
        if isinstance(data, pl.DataFrame):
            data = data.to_arrow()
        elif isinstance(data, pa.RecordBatchReader):
            data = data.read_all()
        missing = [f.name for f in spec.schema if f.name not in data.column_names]
        if missing:
            raise ValueError(f"data for table {spec.name!r} lacks columns {missing}")
        return data.select(spec.schema.names).cast(spec.schema)

    def append(self, name: str, data: ArrowData, *, run_id: str, sources: Sequence[str] = ()) -> int:
        """Append rows to `name`; returns the new table version."""
        spec = table(name)
        self.delta(name)
        write_deltalake(
            self.uri(name),
            self.conform(spec, data),
            mode="append",
            partition_by=list(spec.partition_by) or None,
            storage_options=self.storage_options,
            commit_properties=self._commit_properties(run_id, sources),
        )
        return self._written_version(name)

    def overwrite(
        self, name: str, data: ArrowData, *, run_id: str, where: str | None = None, sources: Sequence[str] = ()
    ) -> int:
        """Replace the rows of `name` matching the SQL predicate `where` (all rows when None)."""
        spec = table(name)
        self.delta(name)
        write_deltalake(
            self.uri(name),
            self.conform(spec, data),
            mode="overwrite",
            predicate=where,
            partition_by=list(spec.partition_by) or None,
            storage_options=self.storage_options,
            commit_properties=self._commit_properties(run_id, sources),
        )
        return self._written_version(name)

    def replace_partitions(
        self,
        name: str,
        data: ArrowData,
        *,
        run_id: str,
        partitions: Sequence[Mapping[str, str]] | None = None,
        sources: Sequence[str] = (),
    ) -> int:
        """Replace whole partitions of `name` (those in `data`, plus `partitions`) in one commit."""
        spec = table(name)
        if not spec.partition_by:
            raise ValueError(f"table {name!r} is not partitioned; use overwrite or merge")
        arrow = self.conform(spec, data)
        parts = {tuple(p[c] for c in spec.partition_by) for p in partitions or []}
        if arrow.num_rows:
            present = to_frame(arrow.select(list(spec.partition_by))).unique()
            parts |= set(present.iter_rows())
        where = partition_predicate(dict(zip(spec.partition_by, p, strict=True)) for p in sorted(parts))
        return self.overwrite(name, arrow, run_id=run_id, where=where, sources=sources)

    def merge(
        self,
        name: str,
        data: ArrowData,
        *,
        run_id: str,
        sources: Sequence[str] = (),
        keep: Sequence[str] = (),
        app_id: str | None = None,
    ) -> int:
        """Upsert `data` into `name` by the table's key columns; matched rows keep their `keep` columns.

        With `app_id`, a retried merge is applied once."""
        spec = table(name)
        arrow = self.conform(spec, data)
        dt_ = self.delta(name)
        if app_id and (dt_.transaction_version(app_id) or 0) >= 1:
            return dt_.version()
        on = " AND ".join(f"t.{k} = s.{k}" for k in spec.keys)
        updates = {c: f"s.{c}" for c in spec.schema.names if c not in keep}
        (
            dt_.merge(
                arrow,
                on,
                source_alias="s",
                target_alias="t",
                commit_properties=self._commit_properties(run_id, sources, app_id),
            )
            .when_matched_update(updates)
            .when_not_matched_insert_all()
            .execute()
        )
        return self._written_version(name)

    def commit_files(
        self,
        name: str,
        files: Sequence[str],
        *,
        run_id: str,
        sources: Sequence[str] = (),
        replace: Sequence[Mapping[str, str]] = (),
        remove: Sequence[str] = (),
        app_id: str | None = None,
        extra: Mapping[str, object] | None = None,
        read_version: int | None = None,
    ) -> int:
        """Commit Parquet files written outside delta-rs (Spark, the polars engine) as one Delta commit.

        `files` are paths under `<lake>/_staging/<table>/<run>/` or already under the table folder, in
        `key=value` partition folders (a `sidforge_src=<key>` folder names the input the file came from).
        Staged files are moved into the table first, their names prefixed with the run id (and `src<key>`)
        so that runs never collide. The live files in `remove`, and every live file of the partitions in
        `replace`, are removed in the same commit. With `app_id`, a retried commit is applied once. With
        `read_version`, the commit lands only if no commit since that version touched a partition it adds to
        or removes from; otherwise `ConcurrentWriteError`, and nothing is committed.
        """
        spec = table(name)
        dt_ = self.delta(name)
        if app_id and (dt_.transaction_version(app_id) or 0) >= 1:
            return dt_.version()
        if read_version is not None:  # -1: the table did not exist yet when the writer read it
            dt_ = DeltaTable(self.uri(name), version=max(read_version, 0), storage_options=self.storage_options)
        now_ms = int(time.time() * 1000)
        actions: list[AddAction | RemoveAction] = [self._add_action(spec, src, run_id, now_ms) for src in files]
        wanted = {tuple(p[c] for c in spec.partition_by) for p in replace}
        dropping = set(remove)
        if wanted or dropping:
            live = pl.DataFrame(dt_.get_add_actions(flatten=True))
            for row in live.iter_rows(named=True):
                values = {c: row[f"partition.{c}"] for c in spec.partition_by}
                if row["path"] in dropping or tuple(values.values()) in wanted:
                    actions.append(RemoveAction(file_path(row["path"]), True, now_ms, row["size_bytes"], values))
        props = self._commit_properties(run_id, sources, app_id, extra, retries=0 if read_version is not None else None)
        while True:
            try:
                dt_.create_write_transaction(
                    actions, "append", spec.schema, list(spec.partition_by) or None, commit_properties=props
                )
                break
            except CommitFailedError:
                if read_version is None:
                    raise
                dt_ = self._check_concurrent(spec, dt_.version(), actions)
        return DeltaTable(self.uri(name), storage_options=self.storage_options).version()

    def _add_action(self, spec: TableSpec, src: str, run_id: str, now_ms: int) -> AddAction:
        """Move one file into the table (when staged) and describe it as an AddAction with footer stats."""
        fs, root = self.filesystem()
        table_dir = f"{root}/{spec.name}"
        values, rel = partition_values(src, spec)
        if not src.startswith(f"{table_dir}/"):
            folder, _, base = rel.rpartition("/")
            key = next((seg.split("=", 1)[1] for seg in src.split("/") if seg.startswith(f"{SOURCE_FOLDER}=")), None)
            prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id) + (f"-src{key}" if key else "")
            rel = f"{folder}/{prefix}-{base}" if folder else f"{prefix}-{base}"
        target = f"{table_dir}/{rel}"
        if src != target:
            if fs.get_file_info(src).type == pafs.FileType.File:
                fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
                fs.move(src, target)
            elif fs.get_file_info(target).type != pafs.FileType.File:
                raise FileNotFoundError(f"staged file {src} is missing and was not moved to {target}")
        with fs.open_input_file(target) as fh:
            meta = pq.ParquetFile(fh).metadata
            size = fh.size()
        return AddAction(rel, size, values, now_ms, True, parquet_stats(meta, spec.schema))

    def _check_concurrent(self, spec: TableSpec, since: int, actions: Sequence[AddAction | RemoveAction]) -> DeltaTable:
        """After a lost commit race: the table at its newest version when the commits since `since` left our
        partitions alone, else `ConcurrentWriteError` naming the run that got there first."""
        latest = DeltaTable(self.uri(spec.name), storage_options=self.storage_options)
        mine = {tuple((a.partition_values or {}).get(c) for c in spec.partition_by) for a in actions}
        fs, root = self.filesystem()
        for version in range(since + 1, latest.version() + 1):
            with fs.open_input_stream(f"{root}/{spec.name}/_delta_log/{version:020d}.json") as fh:
                entries = [json.loads(line) for line in fh.read().decode().splitlines() if line.strip()]
            run = next((e["commitInfo"].get("sidforge.run_id") for e in entries if "commitInfo" in e), None)
            for entry in entries:
                change = entry.get("add") or entry.get("remove")
                if change is None:
                    continue
                values = change.get("partitionValues") or {}
                if tuple(values.get(c) for c in spec.partition_by) in mine:
                    where = ", ".join(f"{c}={values.get(c)}" for c in spec.partition_by) or "the whole table"
                    raise ConcurrentWriteError(
                        f"another writer (run {run or 'unknown'}) committed to {spec.name} ({where}) as version "
                        f"{version} while this run was writing; nothing of this run was committed"
                    )
        return latest


def partition_values(path: str, spec: TableSpec) -> tuple[dict[str, str | None], str]:
    """Partition values from the `key=value` folders of a data file, and its path inside the table."""
    parts = path.split("/")
    values: dict[str, str | None] = {}
    for seg in parts[:-1]:
        key, sep, value = seg.partition("=")
        if sep and key in spec.partition_by:
            values[key] = folder_value(value)
    missing = [c for c in spec.partition_by if c not in values]
    if missing:
        raise ValueError(f"file {path} lies in no {missing} partition folder of table {spec.name!r}")
    return values, "/".join([*partition_folders(spec, [values[c] for c in spec.partition_by]), parts[-1]])


def partition_folders(spec: TableSpec, values: Sequence[object]) -> list[str]:
    """The `key=value` folder names of one partition (values escaped as the Delta protocol specifies)."""
    return [partition_folder(c, v) for c, v in zip(spec.partition_by, values, strict=True)]

"""The build registry: the one reader and writer of the SID builds table.

A build is trained (codebooks saved), then built (every item assigned), then published or rejected by the
quality gate; AL-GR's own SIDs come in as imported builds. Its inputs and metrics are JSON in the table and
dicts here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import polars as pl

from lake.catalog import SID_BUILDS
from lake.lake import Lake

TABLE = SID_BUILDS.name


class BuildStatus(StrEnum):
    """Where a build is in its lifecycle."""

    TRAINED = "trained"  # codebooks trained and saved, items not assigned yet
    BUILT = "built"  # every item assigned a SID, collisions resolved
    PUBLISHED = "published"  # passed the quality gate; readers get the latest one
    REJECTED = "rejected"  # failed the quality gate
    IMPORTED = "imported"  # SIDs ingested from files (AL-GR's published builds)


KEPT = (BuildStatus.TRAINED, BuildStatus.BUILT, BuildStatus.PUBLISHED)  # builds that new runs may reuse
ASSIGNED = (BuildStatus.BUILT, BuildStatus.PUBLISHED)  # builds whose items have SIDs


@dataclass(frozen=True)
class SidBuild:
    """One row of the builds table, with its JSON columns decoded."""

    build_id: str
    method: str
    sizes: list[int]
    status: BuildStatus
    created_at: dt.datetime
    run_id: str
    inputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    @property
    def levels(self) -> int:
        """Number of SID levels."""
        return len(self.sizes)

    def to_row(self) -> dict[str, Any]:
        """The table row (inputs and metrics as JSON)."""
        return {
            "build_id": self.build_id,
            "method": self.method,
            "levels": self.levels,
            "sizes": list(self.sizes),
            "inputs": json.dumps(self.inputs),
            "seed": self.seed,
            "status": str(self.status),
            "metrics": json.dumps(self.metrics),
            "created_at": self.created_at,
            "run_id": self.run_id,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SidBuild:
        """The build of a table row."""
        return cls(
            build_id=row["build_id"],
            method=row["method"],
            sizes=[int(s) for s in row["sizes"]],
            status=BuildStatus(row["status"]),
            created_at=row["created_at"],
            run_id=row["run_id"],
            inputs=json.loads(row["inputs"] or "{}"),
            metrics=json.loads(row["metrics"] or "{}"),
            seed=row["seed"],
        )


def _frame(builds: Sequence[SidBuild]) -> pl.DataFrame:
    return pl.DataFrame(
        [b.to_row() for b in builds],
        schema_overrides={
            "levels": pl.Int16,
            "sizes": pl.List(pl.Int32),
            "seed": pl.Int64,
            "inputs": pl.String,
            "metrics": pl.String,
            "created_at": pl.Datetime("us", "UTC"),
        },
    )


class BuildRegistry:
    """The SID builds of one lake: `BuildRegistry(lake).published()`."""

    def __init__(self, lake: Lake):
        self.lake = lake

    def all(self, statuses: Iterable[BuildStatus] | None = None) -> list[SidBuild]:
        """Every build (with one of `statuses` when given), oldest first."""
        frame = self.lake.scan(TABLE).sort("created_at")
        if statuses is not None:
            frame = frame.filter(pl.col("status").is_in([str(s) for s in statuses]))
        return [SidBuild.from_row(r) for r in frame.collect().iter_rows(named=True)]

    def get(self, build_id: str) -> SidBuild:
        """Build `build_id`; a LookupError naming the known builds when there is none."""
        rows = self.lake.scan(TABLE).filter(pl.col("build_id") == build_id).collect()
        if not rows.height:
            known = ", ".join(b.build_id for b in self.all()) or "none"
            raise LookupError(f"no SID build {build_id!r} in {self.lake.root} (builds: {known})")
        return SidBuild.from_row(rows.row(0, named=True))

    def latest(self, *statuses: BuildStatus, trained_here: bool = False) -> SidBuild | None:
        """The newest build with one of `statuses`; `trained_here` leaves out imported builds."""
        builds = [b for b in self.all(statuses) if not (trained_here and b.method == "imported")]
        return builds[-1] if builds else None

    def published(self) -> SidBuild | None:
        """The build readers get by default: the latest published one."""
        return self.latest(BuildStatus.PUBLISHED)

    def sizes(self, build_id: str) -> list[int]:
        """Codebook sizes of build `build_id` (a LookupError when unknown)."""
        return self.get(build_id).sizes

    def version(self) -> int | None:
        """The Delta version of the builds table (recorded in what is derived from it)."""
        return self.lake.version(TABLE)

    def record(self, build: SidBuild, *, by: str | None = None, sources: Sequence[str] = ()) -> SidBuild:
        """Insert or replace `build` (by build id) in one commit made by run `by` (default the build's run)."""
        self.lake.merge(TABLE, _frame([build]), run_id=by or build.run_id, sources=sources)
        return build

    def mark(self, build: SidBuild, status: BuildStatus, *, by: str | None = None, **changes: Any) -> SidBuild:
        """Record `build` with a new status (and other changed fields, e.g. metrics or run_id) by run `by`."""
        return self.record(replace(build, status=status, **changes), by=by)

    def record_imported(self, build_id: str, files: Sequence[str], levels: int, size: int, run_id: str) -> SidBuild:
        """Record an imported (published AL-GR) semantic-ID build."""
        return self.record(
            SidBuild(
                build_id,
                "imported",
                [size] * levels,
                BuildStatus.IMPORTED,
                dt.datetime.now(dt.UTC),
                run_id,
                inputs={"files": list(files)},
            ),
            sources=files,
        )

    def timeline(self) -> pl.DataFrame:
        """When each build became the published one, and the last data day it was built from:
        (published_at, build_id, data_through), from the table's Delta history."""
        rows = []
        for commit in self.lake.history(TABLE).sort("version").iter_rows(named=True):
            at = commit["timestamp"]
            published = (
                self.lake.scan(TABLE, version=commit["version"])
                .filter(pl.col("status") == str(BuildStatus.PUBLISHED))
                .sort("created_at")
                .select("build_id")
                .collect()
            )
            if published.height:
                rows.append({"published_at": at, "build_id": published["build_id"][-1]})
        frame = pl.DataFrame(rows, schema={"published_at": pl.Datetime("us", "UTC"), "build_id": pl.String})
        frame = frame.filter(pl.col("build_id") != pl.col("build_id").shift(1).fill_null(""))
        covered = (
            self.lake.scan(TABLE)
            .select("build_id", data_through=pl.col("inputs").str.json_path_match("$.data_through").str.to_date())
            .collect()
        )
        return frame.join(covered, on="build_id", how="left")

"""A sensor on the raw landing folder: each new or changed day of events starts `ingest_daily` once."""

import hashlib
from pathlib import Path

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from assets.partitions import daily
from assets.resources import LandingResource
from lake.catalog import is_day
from pipelines.jobs import ingest_daily


def day_run_key(folder: Path) -> str:
    """A run key from the paths, sizes and modification times of a day's files: new files run once."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return f"{folder.name}:{digest.hexdigest()[:16]}"


@sensor(
    job=ingest_daily,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Watches `<landing>/events/ds=YYYY-MM-DD/`: adds each landed day as a partition of "
    "`interactions` and starts `ingest_daily` for it once per new or changed set of files.",
)
def landing_sensor(context: SensorEvaluationContext, landing: LandingResource):
    """Add landed days as partitions and request `ingest_daily` for every day whose files are new or changed."""
    events = Path(landing.root, "events")
    if not events.is_dir():
        return SkipReason(f"no landing folder {events}")
    folders = [f for f in sorted(events.glob("ds=*")) if f.is_dir() and any(p.is_file() for p in f.rglob("*"))]
    odd = [f.name for f in folders if not is_day(f.name.removeprefix("ds="))]
    if odd:
        context.log.warning(f"skipping folders not named ds=YYYY-MM-DD under {events}: {', '.join(odd)}")
    days = {f.name.removeprefix("ds="): f for f in folders if f.name not in odd}
    if not days:
        return SkipReason(f"no event files under {events}")
    known = set(context.instance.get_dynamic_partitions(daily.name))
    return SensorResult(
        run_requests=[RunRequest(run_key=day_run_key(folder), partition_key=day) for day, folder in days.items()],
        dynamic_partitions_requests=[daily.build_add_request(sorted(set(days) - known))] if set(days) - known else [],
    )

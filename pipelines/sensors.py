"""A sensor on the raw landing folder: each new or changed day of events starts `ingest_daily` once."""

import hashlib

import pyarrow.fs as pafs
from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from assets.partitions import daily
from assets.resources import LandingResource
from lake import storage
from lake.catalog import is_day
from pipelines.jobs import ingest_daily


def day_run_key(day: str, files: dict[str, pafs.FileInfo]) -> str:
    """A run key from the paths (relative to the day's folder), sizes and modification times of a day's
    files: new or changed files run once."""
    digest = hashlib.sha256()
    for name, file in sorted(files.items()):
        digest.update(f"{name}|{file.size}|{file.mtime_ns}\n".encode())
    return f"ds={day}:{digest.hexdigest()[:16]}"


@sensor(
    job=ingest_daily,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Watches `<landing>/events/ds=YYYY-MM-DD/`: adds each landed day as a partition of "
    "`interactions` and starts `ingest_daily` for it once per new or changed set of files.",
)
def landing_sensor(context: SensorEvaluationContext, landing: LandingResource):
    """Add landed days as partitions and request `ingest_daily` for every day whose files are new or changed."""
    events = landing.location("events")
    if not storage.is_dir(events):
        return SkipReason(f"no landing folder {events}")
    folders: dict[str, dict[str, pafs.FileInfo]] = {}
    for name, file in storage.file_infos(events).items():
        folder, _, inside = name.partition("/")
        if folder.startswith("ds=") and inside:
            folders.setdefault(folder, {})[inside] = file
    odd = sorted(f for f in folders if not is_day(f.removeprefix("ds=")))
    if odd:
        context.log.warning(f"skipping folders not named ds=YYYY-MM-DD under {events}: {', '.join(odd)}")
    days = {f.removeprefix("ds="): files for f, files in sorted(folders.items()) if f not in odd}
    if not days:
        return SkipReason(f"no event files under {events}")
    known = set(context.instance.get_dynamic_partitions(daily.name))
    return SensorResult(
        run_requests=[RunRequest(run_key=day_run_key(day, files), partition_key=day) for day, files in days.items()],
        dynamic_partitions_requests=[daily.build_add_request(sorted(set(days) - known))] if set(days) - known else [],
    )

"""A sensor on the raw landing folder: each new or changed day of events starts `ingest_daily` once."""

import hashlib
from pathlib import Path

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from assets.partitions import daily
from assets.resources import LandingResource
from pipelines.jobs import ingest_daily


def day_run_key(folder: Path) -> str:
    """A run key from the paths, sizes and modification times of a day's files: new files run once."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return f"{folder.name}:{digest.hexdigest()[:16]}"


@sensor(job=ingest_daily, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED)
def landing_sensor(context: SensorEvaluationContext, landing: LandingResource):
    """Request `ingest_daily` for every `<landing>/events/ds=<day>/` whose files are new or changed."""
    events = Path(landing.root, "events")
    if not events.is_dir():
        return SkipReason(f"no landing folder {events}")
    known = set(daily.get_partition_keys())
    requests = []
    for folder in sorted(events.glob("ds=*")):
        day = folder.name.removeprefix("ds=")
        if folder.is_dir() and day in known and any(p.is_file() for p in folder.rglob("*")):
            requests.append(RunRequest(run_key=day_run_key(folder), partition_key=day))
    return requests or SkipReason(f"no event files under {events}")

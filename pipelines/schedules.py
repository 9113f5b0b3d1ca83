"""Schedules: the nightly SID rebuild (hour and time zone from SIDFORGE_NIGHTLY_HOUR and SIDFORGE_TIMEZONE) and
the weekly lake maintenance (Sunday 03:00 in the same time zone)."""

import os

from dagster import DefaultScheduleStatus, ScheduleDefinition

from lake.settings import setting
from pipelines.jobs import lake_maintenance, nightly_sid_rebuild

NIGHTLY_HOUR = int(setting("SIDFORGE_NIGHTLY_HOUR", os.environ) or "2")  # Dagster needs the cron when it loads
TIMEZONE = setting("SIDFORGE_TIMEZONE", os.environ) or "UTC"

nightly_schedule = ScheduleDefinition(
    name="nightly_sid_rebuild_schedule",
    job=nightly_sid_rebuild,
    cron_schedule=f"0 {NIGHTLY_HOUR} * * *",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Rebuild semantic IDs every night after the day's ingest.",
)

maintenance_schedule = ScheduleDefinition(
    name="lake_maintenance_schedule",
    job=lake_maintenance,
    cron_schedule="0 3 * * 0",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Vacuum the lake every week: unreferenced files, stale staging, unregistered published versions.",
)

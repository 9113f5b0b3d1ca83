"""Partitions: interactions are ingested one UTC day at a time."""

import os

from dagster import DailyPartitionsDefinition

START_DATE = os.environ.get("SIDFORGE_START_DATE", "2025-01-01")

daily = DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC")

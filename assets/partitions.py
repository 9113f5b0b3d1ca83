"""Partitions: interactions are ingested one UTC day at a time, for the days that have landed.

The days are dynamic partitions: `landing_sensor` (and `sidforge demo`) add a day when its folder
`<landing>/events/ds=<day>/` appears, so the UI lists only days with data and a backfill covers only them.
"""

from dagster import DagsterInstance, DynamicPartitionsDefinition

from lake.catalog import is_day

daily = DynamicPartitionsDefinition(name="interaction_days")


def add_days(instance: DagsterInstance, days: list[str]) -> list[str]:
    """Register landed days as partitions of `interactions` and return those that were new."""
    bad = [d for d in days if not is_day(d)]
    if bad:
        raise ValueError(f"not a day YYYY-MM-DD: {', '.join(bad)}")
    new = sorted(set(days) - set(instance.get_dynamic_partitions(daily.name)))
    if new:
        instance.add_dynamic_partitions(daily.name, new)
    return new

"""Lake maintenance op: the library's vacuum, with what it removed as metadata."""

from dagster import Config, MetadataValue, OpExecutionContext, Output, op

from assets.resources import LakeResource
from lake.maintenance import DEFAULT_RETENTION_HOURS, vacuum


class VacuumConfig(Config):
    """How long removed files stay readable for time travel, and whether to only list them."""

    retention_hours: float = DEFAULT_RETENTION_HOURS
    dry_run: bool = False


@op(
    description="Finish or clean up killed runs; remove table files, staging and unregistered published "
    "versions that no live version needs."
)
def vacuum_lake(context: OpExecutionContext, config: VacuumConfig, lake: LakeResource) -> Output[int]:
    """Vacuum the lake; the output is how many files and folders went, with the details as metadata."""
    report = vacuum(lake.lake(), retention_hours=config.retention_hours, dry_run=config.dry_run)
    context.log.info(f"vacuum of {lake.root}: {report.removed} files and folders (dry run: {report.dry_run})")
    return Output(
        report.removed,
        metadata={
            "dry_run": report.dry_run,
            "recovered_runs": MetadataValue.json(report.recovered_runs),
            "table_files": MetadataValue.json({k: len(v) for k, v in report.table_files.items()}),
            "staging": MetadataValue.json(report.staging),
            "published_versions": MetadataValue.json(report.published_versions),
        },
    )

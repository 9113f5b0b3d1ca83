"""`asset_lines`: a Dagster logger that prints the lines assets log themselves (progress of long loops, build
decisions) to stdout, without Dagster's own events. Off unless a run config sets its level: the demo's console
shows them while a job runs; the UI shows the same lines on the run page either way."""

from __future__ import annotations

import logging
import sys

from dagster import Field, InitLoggerContext, logger


class _AssetLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", {})
        return f"    {meta.get('step_key') or '-'}: {meta.get('orig_message', record.getMessage())}"


def _not_an_event(record: logging.LogRecord) -> bool:
    return getattr(record, "dagster_meta", {}).get("dagster_event") is None


@logger(
    config_schema={"log_level": Field(str, default_value="CRITICAL", description="INFO prints the assets' lines")},
    description="The lines assets log themselves (progress, decisions) on stdout; off unless log_level is set.",
)
def asset_lines(init_context: InitLoggerContext) -> logging.Logger:
    """A logger writing the assets' own log lines to stdout at `log_level`."""
    out = logging.Logger("sidforge.asset_lines", level=init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_AssetLines())
    handler.addFilter(_not_an_event)
    out.addHandler(handler)
    return out

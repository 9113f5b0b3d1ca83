"""`make demo`: generate demo data and run the whole asset graph through Dagster's jobs, then summarise.

The console gets one line per job and per materialized asset (rows, seconds); Dagster's event log, library
logs and warnings go to a log file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

from dagster import DagsterInstance, ExecuteInProcessResult

from assets.partitions import add_days
from builds.registry import BuildRegistry
from ingest.synthetic import SCALES, generate
from lake import Lake, storage
from pipelines.profile import local_profile

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}, "asset_lines": {"config": {"log_level": "INFO"}}}}
"""Dagster's events go to the log file only; the lines assets log themselves (progress, decisions) show as they run."""
PROBE = {"ops": {"gr_probe": {"config": {"enabled": True, "epochs": 4, "max_examples": 300}}}}
"""The demo's nightly run trains the GR probe, shorter than its defaults (about a minute at the demo scale)."""
ROW_KEYS = ("rows_written", "items_encoded", "items_assigned", "examples", "published_build", "result")


def _stage(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _asset_lines(result: ExecuteInProcessResult) -> list[str]:
    """One line per materialized asset: its main figure and the seconds its step took."""
    seconds = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.get_step_success_events()}
    lines = []
    for event in result.get_asset_materialization_events():
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        shown = [f"{k} {_stage(metadata[k])}" for k in ROW_KEYS if k in metadata][:2]
        name = event.asset_key.to_user_string()
        lines.append(f"  {name:<24}{', '.join(shown):<58}{seconds.get(event.step_key, 0.0):6.1f} s")
    checks = [
        e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    if checks:
        failed = [c.check_name for c in checks if not c.passed]
        lines.append(
            f"  checks: {len(checks) - len(failed)} of {len(checks)} passed"
            + (f"; failed: {', '.join(failed)}" if failed else "")
        )
    return lines


def _append_log(log: Path, instance: DagsterInstance, result: ExecuteInProcessResult) -> None:
    with log.open("a") as out:
        for entry in instance.all_logs(result.run_id):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.timestamp))
            out.write(
                f"{when} {logging.getLevelName(entry.level):<7} {result.job_def.name} "
                f"{entry.step_key or '-'}: {entry.message or entry.dagster_event_type}\n"
            )


def _run(instance: DagsterInstance, log: Path, label: str, job: str, config: dict | None = None, **kwargs) -> None:
    from pipelines.definitions import defs

    started = time.monotonic()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config={**QUIET, **(config or {})}, **kwargs
    )
    _append_log(log, instance, result)
    print(f"{label} ({time.monotonic() - started:.1f} s)", flush=True)
    for line in _asset_lines(result):
        print(line, flush=True)
    if not result.success:
        failures = [e.event_specific_data.error for e in result.all_events if e.is_step_failure]
        cause = "; ".join((f.cause or f).message.strip().splitlines()[-1] for f in failures) or "see the log"
        raise RuntimeError(f"{label} failed: {cause} (full log: {log}; run {result.run_id} in `make dev`)")


def run_demo(
    scale: str = "demo",
    seed: int = 0,
    raw: str = "./data/raw",
    lake_root: str | None = None,
    log: str = "./data/demo.log",
) -> Lake:
    """Generate data (unless already there for this scale and seed), ingest every day, run the nightly job."""
    manifest_path = storage.join(storage.normalize(raw), "manifest.json")
    manifest = json.loads(storage.read_text(manifest_path)) if storage.is_file(manifest_path) else None
    if not manifest or manifest["seed"] != seed or manifest["scale"] != asdict(SCALES[scale]):
        started = time.monotonic()
        manifest = generate(raw, scale, seed)
        print(
            f"generated {scale} data (seed {seed}) in {raw}: {json.dumps(manifest['counts'])} "
            f"({time.monotonic() - started:.1f} s)",
            flush=True,
        )
    local_profile(raw, lake_root)
    log_path = Path(log).resolve()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        instance = DagsterInstance.get()
        add_days(instance, manifest["days"])
        for day in manifest["days"]:
            _run(instance, log_path, f"ingest_daily {day}", "ingest_daily", partition_key=day)
        _run(instance, log_path, "ingest_catalog", "ingest_catalog")
        _run(instance, log_path, "nightly_sid_rebuild", "nightly_sid_rebuild", PROBE)
    finally:
        root.removeHandler(handler)
        logging.captureWarnings(False)
        handler.close()
    return Lake(os.environ["SIDFORGE_LAKE"])


def summary(lake: Lake) -> str:
    """What the demo built: the SID build's metrics, the published dataset and the report."""
    build = BuildRegistry(lake).published()
    lines = []
    if build:
        metrics = build.metrics
        lines.append(f"published SID build {build.build_id} ({build.method}, sizes {build.sizes})")
        for key in (
            "gini",
            "collision_rate",
            "unique_sid_rate",
            "max_items_per_sid",
            "embedding_hitrate",
            "embedding_hitrate_raw",
            "embedding_hitrate_random",
        ):
            lines.append(f"  {key:<26}{metrics[key]:.4f}")
        lines.append(f"report: {metrics.get('report')}")
        if "probe_hr_at_10" in metrics:
            lines.append("GR probe (HR@K: probe / random SIDs / popularity)")
            for k in (1, 10, 100):
                if f"probe_hr_at_{k}" in metrics:
                    row = [metrics[f"probe_hr_at_{k}{s}"] for s in ("", "_random", "_popularity")]
                    lines.append(f"  HR@{k:<23}{row[0]:.4f} / {row[1]:.4f} / {row[2]:.4f}")
    data = lake.scan("published_datasets").sort("created_at").collect()
    if data.height:
        lines.append(f"published training data: {lake.published_path(data['path'][-1])}")
    return "\n".join(lines)

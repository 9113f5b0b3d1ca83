"""The code location's shape: assets and their groups, checks, jobs and what they select, schedules and sensors.

A change to the graph shows up here as a diff against tests/snapshots/definitions.json; after checking it, write the
new snapshot with `SIDFORGE_UPDATE_SNAPSHOT=1 pytest tests/test_definitions_snapshot.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipelines.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def _shape() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {
        key.to_user_string(): {
            "group": graph.get(key).group_name,
            "deps": sorted(k.to_user_string() for k in graph.get(key).parent_keys),
            "partitioned": graph.get(key).partitions_def is not None,
        }
        for key in sorted(graph.get_all_asset_keys())
    }
    checks = sorted(f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys)
    jobs = {}
    for name in ("ingest_daily", "ingest_catalog", "nightly_sid_rebuild", "align_embeddings", "lake_maintenance"):
        job = defs.resolve_job_def(name)
        jobs[name] = sorted(job.graph.node_dict)
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "timezone": s.execution_timezone}
        for s in defs.schedules or []
    }
    sensors = {s.name: sorted(j.name for j in s.jobs) for s in defs.sensors or []}
    return {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_definitions_match_the_snapshot():
    shape = json.loads(json.dumps(_shape()))
    if os.environ.get("SIDFORGE_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(shape, indent=2, sort_keys=True) + "\n")
    assert shape == json.loads(SNAPSHOT.read_text())


def test_every_job_runs_something_and_every_asset_has_a_group():
    shape = _shape()
    assert all(shape["jobs"].values())
    assert {a["group"] for a in shape["assets"].values()} == {
        "ingest",
        "embeddings",
        "semantic_ids",
        "publish",
        "quality",
    }

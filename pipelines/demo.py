"""`make demo`: generate demo data and run the whole asset graph through Dagster's jobs, then summarise."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import polars as pl
from dagster import DagsterInstance

from embeddings.model import TINY_CONFIG
from lake import Lake
from lake.sources.synthetic import SCALES, generate


def _environment(raw: str, lake_root: str | None) -> None:
    """Point the code location at the demo's folders; without real OpenCLIP weights, ask for the tiny model
    with random weights explicitly (its model id then says `random`)."""
    os.environ["SIDFORGE_LANDING"] = str(Path(raw).resolve())
    if lake_root:
        os.environ["SIDFORGE_LAKE"] = lake_root
    if not os.environ.get("SIDFORGE_CLIP_WEIGHTS"):
        os.environ.update({"SIDFORGE_CLIP_MODEL": "sidforge-tiny", "SIDFORGE_CLIP_CONFIG": str(TINY_CONFIG),
                           "SIDFORGE_CLIP_RANDOM_WEIGHTS": "1"})


def run_demo(scale: str = "demo", seed: int = 0, raw: str = "./data/raw", lake_root: str | None = None) -> Lake:
    """Generate data (unless already there for this scale and seed), ingest every day, run the nightly job."""
    manifest_path = Path(raw, "manifest.json")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    if not manifest or manifest["seed"] != seed or manifest["scale"] != asdict(SCALES[scale]):
        print(f"generating {scale} data (seed {seed}) in {raw} ...")
        manifest = generate(raw, scale, seed)
    _environment(raw, lake_root)
    from pipelines.definitions import defs

    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    for day in manifest["days"]:
        print(f"ingest_daily {day} ...")
        if not defs.resolve_job_def("ingest_daily").execute_in_process(instance=instance, partition_key=day).success:
            raise RuntimeError(f"ingest of {day} failed")
    for job in ("ingest_catalog", "nightly_sid_rebuild"):
        print(f"{job} ...")
        if not defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False).success:
            raise RuntimeError(f"{job} failed; see the run in the Dagster UI (`make dev`)")
    return Lake(os.environ.get("SIDFORGE_LAKE") or None)


def summary(lake: Lake) -> str:
    """What the demo built: the SID build's metrics, the published dataset and the report."""
    build = lake.published_build()
    lines = []
    if build:
        row = lake.scan("sid_builds").filter(pl.col("build_id") == build).collect().row(0, named=True)
        metrics = json.loads(row["metrics"])
        lines.append(f"published SID build {build} ({row['method']}, sizes {row['sizes']})")
        for key in ("gini", "collision_rate", "unique_sid_rate", "max_items_per_sid", "embedding_hitrate",
                    "embedding_hitrate_raw", "embedding_hitrate_random"):
            lines.append(f"  {key:<26}{metrics[key]:.4f}")
        lines.append(f"report: {metrics.get('report')}")
    data = lake.scan("published_datasets").sort("created_at").collect()
    if data.height:
        lines.append(f"published training data: {data['path'][-1]}")
    return "\n".join(lines)

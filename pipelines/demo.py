"""`make demo`: generate demo data and materialize the ingest assets through Dagster."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from dagster import DagsterInstance, materialize

from assets import ingest as ingest_assets
from assets.resources import default_resources
from lake import Lake
from lake.sources.synthetic import SCALES, generate


def run_demo(scale: str = "demo", seed: int = 0, raw: str = "./data/raw", lake_root: str | None = None) -> Lake:
    """Generate data (unless already there for this scale and seed), ingest every day and the catalogue."""
    manifest_path = Path(raw, "manifest.json")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    if not manifest or manifest["seed"] != seed or manifest["scale"] != asdict(SCALES[scale]):
        print(f"generating {scale} data (seed {seed}) in {raw} ...")
        manifest = generate(raw, scale, seed)
    resources = default_resources()
    if lake_root:
        resources["lake"] = type(resources["lake"])(root=lake_root)
    resources["landing"] = type(resources["landing"])(root=raw)
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    catalog = [ingest_assets.user_sequences, ingest_assets.items, ingest_assets.precomputed_embeddings,
               ingest_assets.item_pairs]
    for day in manifest["days"]:
        print(f"ingest_daily {day} ...")
        result = materialize([ingest_assets.interactions], partition_key=day, resources=resources,
                             instance=instance)
        if not result.success:
            raise RuntimeError(f"ingest of {day} failed")
    print("ingest_catalog ...")
    result = materialize(catalog, resources=resources, instance=instance)
    if not result.success:
        raise RuntimeError("catalogue ingest failed")
    return resources["lake"].lake()  # type: ignore[attr-defined]

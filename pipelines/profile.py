"""Profiles: the settings of a deployment as a mapping of environment variables (`lake.settings.SETTINGS` lists
every variable and its default).

`local` is what `sidforge demo` and `sidforge dev` (`make demo`, `make dev`) share, so that every job the demo ran
also runs from the UI: Dagster's home, the lake and landing folders, and the OpenCLIP encoder. `production` names
what an operator sets for an object-store lake and a Spark cluster (values are examples to replace)."""

from __future__ import annotations

import os
from pathlib import Path

from embeddings.model import TINY_CONFIG
from lake import storage
from lake.settings import DEFAULT_LAKE, DEFAULT_LANDING

DAGSTER_HOME = "./.dagster"
TELEMETRY_OFF = "telemetry:\n  enabled: false\n"
TINY_ENCODER = {
    "SIDFORGE_CLIP_MODEL": "sidforge-tiny",
    "SIDFORGE_CLIP_CONFIG": str(TINY_CONFIG),
    "SIDFORGE_CLIP_RANDOM_WEIGHTS": "1",
}
PROFILES: dict[str, dict[str, str]] = {
    "local": {
        "GX_ANALYTICS_ENABLED": "false",
        "DAGSTER_HOME": DAGSTER_HOME,
        "SIDFORGE_LAKE": DEFAULT_LAKE,
        "SIDFORGE_LANDING": DEFAULT_LANDING,
        **TINY_ENCODER,
    },
    "production": {
        "GX_ANALYTICS_ENABLED": "false",
        "SIDFORGE_LAKE": "s3://bucket/sidforge/lake",
        "SIDFORGE_LANDING": "/mnt/landing",
        "SIDFORGE_ENGINE": "spark",
        "SIDFORGE_SPARK_MASTER": "spark://master:7077",
        "SIDFORGE_CLIP_MODEL": "ViT-B-32",
        "SIDFORGE_CLIP_WEIGHTS": "/models/open_clip_vit_b_32.bin",
        "SIDFORGE_DEVICE": "cuda",
    },
}


def local_profile(raw: str | None = None, lake_root: str | None = None) -> dict[str, str]:
    """Set the local defaults in `os.environ` (settings already there win, `raw` and `lake_root` win over them)
    and return the variables it set; relative folders are resolved against the current directory.

    Without `SIDFORGE_CLIP_WEIGHTS` the encoder is the small `sidforge-tiny` model with explicitly random
    weights (its model id says `random`); real weights are used as soon as that variable names them.
    """
    folders = ("DAGSTER_HOME", "SIDFORGE_LANDING", "SIDFORGE_LAKE")
    local = {
        k: str(Path(v).resolve()) if k in folders else v for k, v in PROFILES["local"].items() if k not in TINY_ENCODER
    }
    chosen = {k: v for k, v in local.items() if not os.environ.get(k)}
    if raw:
        chosen["SIDFORGE_LANDING"] = storage.normalize(raw)
    if lake_root:
        chosen["SIDFORGE_LAKE"] = lake_root
    if not os.environ.get("SIDFORGE_CLIP_WEIGHTS"):
        chosen |= TINY_ENCODER
    os.environ.update(chosen)
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(TELEMETRY_OFF)
    return chosen

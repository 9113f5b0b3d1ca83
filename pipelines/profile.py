"""The local profile that `sidforge demo` and `sidforge dev` (`make demo`, `make dev`) share, so that every job
the demo ran also runs from the UI: Dagster's home, the landing folder, and the OpenCLIP encoder."""

from __future__ import annotations

import os
from pathlib import Path

from embeddings.model import TINY_CONFIG
from lake.lake import DEFAULT_ROOT

DAGSTER_HOME = "./.dagster"
DEFAULT_LANDING = "./data/raw"
TELEMETRY_OFF = "telemetry:\n  enabled: false\n"


def local_profile(raw: str | None = None, lake_root: str | None = None) -> dict[str, str]:
    """Set the local defaults in `os.environ` (settings already there win, `raw` and `lake_root` win over them)
    and return the variables it set; relative folders are resolved against the current directory.

    Without `SIDFORGE_CLIP_WEIGHTS` the encoder is the small `sidforge-tiny` model with explicitly random
    weights (its model id says `random`); real weights are used as soon as that variable names them.
    """
    chosen = {k: v for k, v in {
        "GX_ANALYTICS_ENABLED": "false", "DAGSTER_HOME": str(Path(DAGSTER_HOME).resolve()),
        "SIDFORGE_LANDING": str(Path(DEFAULT_LANDING).resolve()), "SIDFORGE_LAKE": str(Path(DEFAULT_ROOT).resolve()),
    }.items() if not os.environ.get(k)}
    if raw:
        chosen["SIDFORGE_LANDING"] = str(Path(raw).resolve())
    if lake_root:
        chosen["SIDFORGE_LAKE"] = lake_root
    if not os.environ.get("SIDFORGE_CLIP_WEIGHTS"):
        chosen |= {"SIDFORGE_CLIP_MODEL": "sidforge-tiny", "SIDFORGE_CLIP_CONFIG": str(TINY_CONFIG),
                   "SIDFORGE_CLIP_RANDOM_WEIGHTS": "1"}
    os.environ.update(chosen)
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(TELEMETRY_OFF)
    return chosen

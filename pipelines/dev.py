"""`sidforge dev` (`make dev`): the Dagster UI and daemon under the local profile that `sidforge demo` used."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

from pipelines.profile import local_profile

WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"


def serve(host: str, port: int) -> NoReturn:
    """Replace this process with `dagster dev` (so Ctrl-C reaches Dagster directly) under the local profile."""
    for name, value in sorted(local_profile().items()):
        print(f"{name}={value}", file=sys.stderr)
    dagster = Path(sys.executable).with_name("dagster")
    target = ["-w", str(WORKSPACE)] if WORKSPACE.is_file() else ["-m", "pipelines.definitions"]
    os.execv(str(dagster), [str(dagster), "dev", "-h", host, "-p", str(port), *target])

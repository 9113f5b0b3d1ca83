"""Saving a benchmark's results as JSON under benchmarks/results/ with the machine description."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def save(name: str, payload: dict, **machine: object) -> Path:
    """Write `results/<name>.json` with the machine (host, cores, platform, plus `machine`) and the date."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    described = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **machine,
    }
    out.write_text(
        json.dumps(
            {"machine": described, "date": dt.datetime.now(dt.UTC).isoformat(), **payload}, indent=2, default=str
        )
    )
    print(f"saved {out}")
    return out

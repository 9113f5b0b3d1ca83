"""sidforge's settings in one place: their defaults, the environment variables that set them, and the choices
that the libraries check when they are constructed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, cast, get_args

EngineName = Literal["polars", "spark"]
ENGINES: tuple[str, ...] = get_args(EngineName)

DEFAULT_LAKE = "./data/lake"
DEFAULT_LANDING = "./data/raw"
DEFAULT_SPARK_MASTER = "local[2]"
DEFAULT_ENGINE: EngineName = "polars"
DEFAULT_DRIVER_MEMORY = "2g"

SETTINGS: dict[str, tuple[str | None, str]] = {  # variable -> (default, what it sets); read by assets/pipelines
    "SIDFORGE_LAKE": (DEFAULT_LAKE, "the lake root, a folder or an object-store URI"),
    "SIDFORGE_LANDING": (DEFAULT_LANDING, "the raw landing folder that the sensor and the ingest assets read"),
    "SIDFORGE_ENGINE": (DEFAULT_ENGINE, "ingest and publish engine: polars or spark"),
    "SIDFORGE_SPARK_MASTER": (DEFAULT_SPARK_MASTER, "Spark master URL for the spark engine"),
    "SIDFORGE_CLIP_MODEL": ("ViT-B-32", "OpenCLIP model name"),
    "SIDFORGE_CLIP_WEIGHTS": (None, "OpenCLIP pretrained tag or checkpoint file"),
    "SIDFORGE_CLIP_CONFIG": (None, "an extra OpenCLIP model config JSON"),
    "SIDFORGE_CLIP_RANDOM_WEIGHTS": ("", "1 to allow random encoder weights"),
    "SIDFORGE_DEVICE": ("auto", "torch device for embeddings: auto, cpu or cuda"),
    "SIDFORGE_NIGHTLY_HOUR": ("2", "hour of the nightly SID rebuild (read when the definitions load)"),
    "SIDFORGE_TIMEZONE": ("UTC", "time zone of the schedules (read when the definitions load)"),
}


def setting(variable: str, environ: Mapping[str, str]) -> str | None:
    """The value of setting `variable` in `environ` (empty counts as unset), or its default."""
    return environ.get(variable) or SETTINGS[variable][0]


def check_choice(kind: str, value: str, choices: tuple[str, ...]) -> str:
    """`value` when it is one of `choices`; a ValueError naming `kind` and the choices otherwise."""
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_engine(name: str) -> EngineName:
    """`name` as an engine name; a ValueError listing the engines otherwise."""
    check_choice("engine", name, ENGINES)
    return cast(EngineName, name)

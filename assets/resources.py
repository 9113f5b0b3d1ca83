"""Resources: the lake root, the landing folder, the ingest engine, Spark, the encoder and the quality gate.

A field left unset (None) takes its environment variable when a run starts (`lake.settings.SETTINGS`: the
variable, its default and what it sets), so definitions load without reading the environment.
"""

import os

from dagster import ConfigurableResource
from pydantic import field_validator

from embeddings.model import EncoderSpec
from lake import Lake, storage
from lake.settings import EngineName, check_engine, setting
from quality.gate import Thresholds


def _setting(value: str | None, variable: str) -> str:
    """`value` when configured, else the environment's `variable` or its default (read at run time)."""
    resolved = value if value is not None else setting(variable, os.environ)
    if resolved is None:
        raise ValueError(f"${variable} is not set and has no default")
    return resolved


class LakeResource(ConfigurableResource):
    """The lake root: a local folder or an object-store URI (default $SIDFORGE_LAKE, else ./data/lake)."""

    root: str | None = None

    def lake(self) -> Lake:
        """The Lake at this root."""
        return Lake(_setting(self.root, "SIDFORGE_LAKE"))


class LandingResource(ConfigurableResource):
    """The raw landing area, laid out as `sidforge generate` writes it: a local folder or an object-store
    prefix (default $SIDFORGE_LANDING, else ./data/raw)."""

    root: str | None = None

    def location(self, *parts: str) -> str:
        """A folder under the landing root (a local path or a URI), whether or not it exists."""
        return storage.join(storage.normalize(_setting(self.root, "SIDFORGE_LANDING")), *parts)

    def folder(self, *parts: str) -> str:
        """A folder under the landing root; a clear error naming it when it does not exist."""
        location = self.location(*parts)
        if not storage.is_dir(location):
            raise FileNotFoundError(
                f"landing folder {location} does not exist; run `sidforge generate` or copy "
                f"raw files there (see docs/algr.md)"
            )
        return location


class SparkResource(ConfigurableResource):
    """Spark master URL: default $SIDFORGE_SPARK_MASTER, else local[2]; a cluster URL in production."""

    master: str | None = None

    def url(self) -> str:
        """The master URL this run uses."""
        return _setting(self.master, "SIDFORGE_SPARK_MASTER")


class EngineResource(ConfigurableResource):
    """Which engine ingests, publishes and validates: polars on one machine, spark to scale out (default
    $SIDFORGE_ENGINE, else polars)."""

    engine: str | None = None

    @field_validator("engine")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        return value if value is None else check_engine(value)

    def name(self) -> EngineName:
        """The engine this run uses."""
        return check_engine(_setting(self.engine, "SIDFORGE_ENGINE"))


class EncoderResource(ConfigurableResource):
    """The OpenCLIP encoder: model name, weights (pretrained tag or checkpoint file), device and batching.

    Unset fields come from $SIDFORGE_CLIP_MODEL, $SIDFORGE_CLIP_WEIGHTS, $SIDFORGE_CLIP_CONFIG,
    $SIDFORGE_CLIP_RANDOM_WEIGHTS and $SIDFORGE_DEVICE. Random weights only when `random_weights` is set;
    `config_file` registers an extra model config JSON.
    """

    model_name: str | None = None
    weights: str | None = None
    config_file: str | None = None
    random_weights: bool | None = None
    device: str | None = None
    precision: str = "auto"
    batch_size: int = 256
    num_workers: int = 2

    def spec(self) -> EncoderSpec:
        """The library's description of this encoder."""
        weights = self.weights if self.weights is not None else setting("SIDFORGE_CLIP_WEIGHTS", os.environ)
        config = self.config_file if self.config_file is not None else setting("SIDFORGE_CLIP_CONFIG", os.environ)
        random_weights = (
            self.random_weights
            if self.random_weights is not None
            else (setting("SIDFORGE_CLIP_RANDOM_WEIGHTS", os.environ) in ("1", "true", "yes"))
        )
        return EncoderSpec(
            _setting(self.model_name, "SIDFORGE_CLIP_MODEL"),
            "random" if random_weights and not weights else weights,
            random_weights,
            _setting(self.device, "SIDFORGE_DEVICE"),
            self.precision,
            config,
        )


class QualityResource(ConfigurableResource):
    """Thresholds of the SID build gate and the hitrate settings (FORGE: K=30, 5,000 sessions).

    Per-level thresholds apply to the model's raw codes: a level whose perplexity falls below
    max(`min_level_perplexity`, `min_level_perplexity_share` x its size), or that uses fewer than
    `min_level_utilisation` of its codes, has collapsed.
    """

    max_gini: float = 0.95
    max_collision_rate: float = 0.95
    min_level_perplexity: float = 2.0
    min_level_perplexity_share: float = 0.1
    min_level_utilisation: float = 0.25
    min_hitrate_share_of_raw: float = 0.3
    hitrate_k: int = 30
    hitrate_sessions: int = 5000
    gallery_items: int = 500_000
    device: str = "auto"

    def thresholds(self) -> Thresholds:
        """The gate's thresholds (checked: none negative)."""
        return Thresholds(
            self.max_gini,
            self.max_collision_rate,
            self.min_level_perplexity,
            self.min_level_perplexity_share,
            self.min_level_utilisation,
            self.min_hitrate_share_of_raw,
        )


def default_resources() -> dict[str, ConfigurableResource]:
    """The resources with nothing configured: each setting is read from the environment when a run starts."""
    return {
        "lake": LakeResource(),
        "landing": LandingResource(),
        "spark": SparkResource(),
        "engine": EngineResource(),
        "quality": QualityResource(),
        "encoder": EncoderResource(),
    }

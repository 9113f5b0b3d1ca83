"""Resources: the lake root, the landing folder, the ingest engine and Spark, all set by configuration."""


from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource, EnvVar

from embeddings.model import EncoderSpec
from lake import Lake
from lake.lake import DEFAULT_ROOT


class LakeResource(ConfigurableResource):
    """The lake root: a local folder or an object-store URI (SIDFORGE_LAKE)."""

    root: str = DEFAULT_ROOT

    def lake(self) -> Lake:
        """The Lake at this root."""
        return Lake(self.root)


class LandingResource(ConfigurableResource):
    """The raw landing folder, laid out as `sidforge generate` writes it (SIDFORGE_LANDING)."""

    root: str = "./data/raw"

    def folder(self, *parts: str) -> Path:
        """A folder under the landing root; a clear error naming it when it does not exist."""
        path = Path(self.root, *parts)
        if not path.exists():
            raise FileNotFoundError(f"landing folder {path} does not exist; run `sidforge generate` or copy "
                                    f"raw files there (see README, 'Real AL-GR files')")
        return path


class SparkResource(ConfigurableResource):
    """Spark master URL (local mode by default, a cluster URL in production)."""

    master: str = "local[2]"


class EngineResource(ConfigurableResource):
    """Which engine ingests: polars on one machine, spark to scale out."""

    engine: Literal["polars", "spark"] = "polars"


class EncoderResource(ConfigurableResource):
    """The OpenCLIP encoder: model name, weights (pretrained tag or checkpoint file), device and batching.

    Random weights only when `random_weights` is set; `config_file` registers an extra model config JSON.
    """

    model_name: str = "ViT-B-32"
    weights: str | None = None
    config_file: str | None = None
    random_weights: bool = False
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 256
    num_workers: int = 2

    def spec(self) -> EncoderSpec:
        """The library's description of this encoder."""
        weights = "random" if self.random_weights and not self.weights else self.weights
        return EncoderSpec(self.model_name, weights, self.random_weights, self.device, self.precision,
                           self.config_file)


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


def default_resources() -> dict[str, ConfigurableResource]:
    """Resources read from the environment, with local defaults."""
    return {
        "lake": LakeResource(root=EnvVar("SIDFORGE_LAKE").get_value(DEFAULT_ROOT) or DEFAULT_ROOT),
        "landing": LandingResource(root=EnvVar("SIDFORGE_LANDING").get_value("./data/raw") or "./data/raw"),
        "spark": SparkResource(master=EnvVar("SIDFORGE_SPARK_MASTER").get_value("local[2]") or "local[2]"),
        "engine": EngineResource(engine=EnvVar("SIDFORGE_ENGINE").get_value("polars") or "polars"),
        "quality": QualityResource(),
        "encoder": EncoderResource(
            model_name=EnvVar("SIDFORGE_CLIP_MODEL").get_value("ViT-B-32") or "ViT-B-32",
            weights=EnvVar("SIDFORGE_CLIP_WEIGHTS").get_value(),
            config_file=EnvVar("SIDFORGE_CLIP_CONFIG").get_value(),
            random_weights=EnvVar("SIDFORGE_CLIP_RANDOM_WEIGHTS").get_value("") in ("1", "true", "yes"),
            device=EnvVar("SIDFORGE_DEVICE").get_value("auto") or "auto",
        ),
    }

"""The GR probe asset: a small generative-retrieval model trained on the published training data, its HR@K beside
random SIDs and popularity recorded in the build's metrics. Off unless its config switches it on."""

import json

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from assets.errors import cause_first
from assets.metadata import markdown_table
from assets.publish import gr_training_data
from assets.resources import LakeResource
from builds.registry import BuildRegistry
from lake.progress import ProgressLines
from quality.gr_probe import ProbeConfig
from serving.probe import latest_version, probe_build

DEFAULTS = ProbeConfig()


def _json(settings: ProbeConfig) -> dict:
    """The settings as the build's metrics hold them (JSON: tuples become lists)."""
    return json.loads(json.dumps(settings.as_dict()))


class GrProbeConfig(Config):
    """`enabled` runs the probe (the demo switches it on); the rest are `quality.gr_probe.ProbeConfig`'s."""

    enabled: bool = False
    dataset: str = "gr"
    epochs: int = DEFAULTS.epochs
    max_examples: int = DEFAULTS.max_examples or 1000
    seed: int = DEFAULTS.seed
    device: str = DEFAULTS.device


@asset(deps=[gr_training_data], group_name="quality", kinds={"pytorch"})
@cause_first
def gr_probe(context: AssetExecutionContext, config: GrProbeConfig, lake: LakeResource) -> MaterializeResult:
    """HR@K and NDCG@K of a small GR model trained on the published build's training data, beside the same
    model on random SIDs and the most popular items (only with `enabled`: it trains two models)."""
    if not config.enabled:
        return MaterializeResult(metadata={"result": "off (config enabled: false)"})
    store = lake.lake()
    build = BuildRegistry(store).published()
    if build is None:
        raise ValueError("no published SID build to probe; materialize published_sids and gr_training_data first")
    settings = ProbeConfig(
        epochs=config.epochs, max_examples=config.max_examples, seed=config.seed, device=config.device
    )
    version = latest_version(store, build.build_id, config.dataset)
    done = build.metrics.get("probe_version") == version and build.metrics.get("probe_config") == _json(settings)
    if done:  # the same version and settings give the same figures: a second run would only train again
        return MaterializeResult(metadata={"build_id": build.build_id, "result": "already probed"})
    figures, where = probe_build(
        store,
        build.build_id,
        dataset=config.dataset,
        config=settings,
        run_id=context.run.run_id,
        progress=ProgressLines(context.log.info),
    )
    rows = [
        {
            "K": key.removeprefix("probe_hr_at_"),
            "HR probe": round(figures[key], 4),
            "HR random SIDs": round(figures[f"{key}_random"], 4),
            "HR popularity": round(figures[f"{key}_popularity"], 4),
        }
        for key in sorted((k for k in figures if k.startswith("probe_hr_at_") and k.count("_") == 3), key=len)
    ]
    return MaterializeResult(
        metadata={
            "build_id": build.build_id,
            "recorded_as": where,
            "version": MetadataValue.path(figures["probe_version"]),
            "test_examples": figures["probe_test_examples"],
            "result": "HR@10 {:.4f} (random SIDs {:.4f}, popularity {:.4f})".format(
                *(figures.get(f"probe_hr_at_10{s}", 0.0) for s in ("", "_random", "_popularity"))
            ),
            "hit_rates": markdown_table(rows),
            **{k: round(v, 6) for k, v in figures.items() if k.startswith("probe_") and isinstance(v, float)},
        }
    )

"""The GR probe on a published version: its splits read through `GRShards`, the build's SIDs from the lake, the
figures recorded in the build's metrics (beside the training-free ones the gate reads) and its HTML report."""

from __future__ import annotations

import polars as pl

from builds.registry import BuildRegistry
from lake.lake import Lake
from quality.gr_probe import ProbeConfig, SidSpace, probe
from quality.report import add_probe
from serving.reader import GRShards


def latest_version(lake: Lake, build_id: str, dataset: str = "gr") -> str:
    """The path of the newest published version of `dataset` for `build_id`; a LookupError naming what exists."""
    if lake.version("published_datasets") is None:
        raise LookupError(f"nothing was published in {lake.root}; run `sidforge publish` first")
    versions = lake.scan("published_datasets").filter(pl.col("dataset") == dataset).sort("created_at").collect()
    mine = versions.filter(pl.col("build_id") == build_id)
    if not mine.height:
        builds = ", ".join(sorted(set(versions["build_id"]))) or "none"
        raise LookupError(f"no published version of {dataset!r} for build {build_id} (published for: {builds})")
    return lake.published_path(mine["path"][-1])


def probe_build(
    lake: Lake, build_id: str, *, dataset: str = "gr", config: ProbeConfig | None = None, run_id: str = "probe"
) -> dict:
    """Train and evaluate the probe on the newest published version of `dataset` for `build_id`, record its
    figures (`probe_*`, with the version and settings) in the build's metrics by run `run_id` and in its report
    (when the gate wrote one), and return them."""
    config = config or ProbeConfig()
    registry = BuildRegistry(lake)
    build = registry.get(build_id)
    path = latest_version(lake, build_id, dataset)
    options = lake.storage_options
    splits = {s: list(GRShards(path, s, shuffle=False, items=True, storage_options=options)) for s in ("train", "test")}
    for split, rows in splits.items():
        if not rows:
            raise ValueError(f"{path}: the {split} split has no examples; publish with test days to probe a build")
    codes = lake.scan("item_sids").filter(pl.col("build_id") == build_id).select("item_id", "codes").collect()
    if not codes.height:
        raise ValueError(f"build {build_id} has no item_sids rows")
    matrix = codes["codes"].list.to_array(len(build.sizes)).to_numpy()
    space = SidSpace(codes["item_id"].to_list(), matrix, build.sizes)
    figures = {
        **probe(splits["train"], splits["test"], space, config),
        "probe_version": path,
        "probe_config": config.as_dict(),
    }
    registry.mark(build, build.status, by=run_id, metrics={**build.metrics, **figures})
    if build.metrics.get("report"):
        add_probe(build.metrics["report"], figures, options)
    return figures

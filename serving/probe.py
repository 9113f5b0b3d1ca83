"""The GR probe on a published version: its splits read through `GRShards`, the build's SIDs from the lake, the
figures recorded in the build's metrics (beside the training-free ones the gate reads) and its HTML report."""

from __future__ import annotations

import json

import polars as pl

from builds.registry import BuildRegistry
from lake.lake import Lake
from lake.progress import Progress
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


def settings_key(config: ProbeConfig) -> str:
    """A probe run's settings as a key: the fields that differ from ProbeConfig's defaults ("defaults" if none)."""
    defaults = ProbeConfig().as_dict()
    changed = [f"{k}={v}" for k, v in config.as_dict().items() if v != defaults[k]]
    return ",".join(changed) or "defaults"


def probe_build(
    lake: Lake,
    build_id: str,
    *,
    dataset: str = "gr",
    config: ProbeConfig | None = None,
    run_id: str = "probe",
    replace: bool = False,
    progress: Progress | None = None,
) -> tuple[dict, str]:
    """Train and evaluate the probe on the newest published version of `dataset` for `build_id`, record its
    figures (`probe_*`, with the version and settings) in the build's metrics by run `run_id` and in its report
    (when the gate wrote one); return them and where they were recorded.

    The build's own figures (`probe_*`) are replaced only by a run with the same settings, or with `replace`. A run
    with other settings is kept beside them, under `probe_runs` keyed by its settings (`settings_key`), so a
    quick or weaker run never overwrites a measurement."""
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
    settings = json.loads(json.dumps(config.as_dict()))
    figures = {
        **probe(splits["train"], splits["test"], space, config, progress),
        "probe_version": path,
        "probe_config": settings,
    }
    recorded = build.metrics.get("probe_config")
    if replace or recorded is None or recorded == settings:
        metrics, where = {**build.metrics, **figures}, "probe"
    else:
        key = settings_key(config)
        metrics = {**build.metrics, "probe_runs": {**build.metrics.get("probe_runs", {}), key: figures}}
        where = f"probe_runs[{key!r}]"
    registry.mark(build, build.status, by=run_id, metrics=metrics)
    if build.metrics.get("report"):
        add_probe(build.metrics["report"], {k: v for k, v in metrics.items() if k.startswith("probe_")}, options)
    return figures, where

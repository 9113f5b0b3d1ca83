"""Capacity figures: time and peak memory per unit of each pipeline stage at three sizes on this machine.

    python -m benchmarks.capacity [--stages ingest publish embed sid_train metrics]

Each (stage, size) runs in a fresh subprocess (files it reads are made beforehand by another one): the stage
alone is timed and its peak resident memory above the start of the call sampled (`benchmarks.peak_memory`).
Stages and units:
- ingest: interactions, an event-log CSV through `ingest --engine polars` (parse, validate, de-duplicate, commit);
- publish: interactions, turned into next-item examples (histories from the interactions), mapped to an imported
  3-level SID build and written as shards (`publish_training_data`, source interactions);
- embed: images, ViT-B-32 (random weights; speed does not depend on them) end to end on the CPU;
- sid_train: 512-d vectors, RQ-KMeans 3 x 256, 10 iterations per level (torch backend);
- metrics: items, the build's distribution metrics (Gini, collision rate, per-level utilisation and entropy).
SID assignment and collision resolution are measured by `benchmarks.sid_assign`. Saves
benchmarks/results/capacity-cpu.json; docs/scale.md turns the figures into the capacity plan.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.peak_memory import peak_above_start
from benchmarks.results_file import save

SIZES = {
    "ingest": [1_000_000, 3_000_000, 10_000_000],
    "publish": [1_000_000, 3_000_000, 10_000_000],
    "embed": [64, 192, 512],
    "sid_train": [25_000, 50_000, 100_000],
    "metrics": [1_000_000, 3_000_000, 10_000_000],
}


def _events(n: int, work: Path) -> None:
    from benchmarks.ingest import make_events

    make_events(work / "events" / "events.csv", n)


def _ingest(n: int, work: Path) -> tuple[Callable[[], object], int]:
    from ingest.run import ingest
    from lake import Lake

    csv = work / "events" / "events.csv"
    rows = pl.scan_csv(csv).select(pl.len()).collect().item()
    return lambda: ingest(Lake(work / "lake"), [csv], "events", ds="2025-01-01"), rows


def _publish_inputs(n: int, work: Path) -> None:
    from ingest.run import ingest
    from lake import Lake

    _events(n, work)
    csv = work / "events" / "events.csv"
    lake = Lake(work / "lake")
    ingest(lake, [csv], "events", ds="2025-01-01")
    items = pl.read_csv(csv, columns=["item_id"], schema_overrides={"item_id": pl.String})["item_id"].unique()
    rng = np.random.default_rng(0)
    sids = work / "sids" / "item_sid_bench.csv"
    sids.parent.mkdir()
    pl.DataFrame(
        {"item_id": items, **{f"codebook_lv{level}": rng.integers(0, 256, len(items)) for level in (1, 2, 3)}}
    ).write_csv(sids)
    ingest(lake, [sids], "algr-item-sid")


def _publish(n: int, work: Path) -> tuple[Callable[[], object], int]:
    from lake import Lake
    from publish.training_data import publish_training_data

    lake = Lake(work / "lake")
    rows = lake.scan("interactions").select(pl.len()).collect().item()
    return lambda: publish_training_data(lake, build_id="algr-item_sid_bench", source="interactions"), rows


def _embed(n: int, work: Path) -> tuple[Callable[[], object], int]:
    from benchmarks.embed import jpegs
    from embeddings.encode import EncodeStats, encode_images
    from embeddings.model import EncoderSpec, load_encoder

    encoder = load_encoder(EncoderSpec("ViT-B-32", "random", allow_random=True, device="cpu"))
    images = jpegs(n)
    return lambda: encode_images(encoder, images, [None] * n, EncodeStats(batch_size=64), 2), n


def _sid_train(n: int, work: Path) -> tuple[Callable[[], object], int]:
    from benchmarks.sid_build import clustered
    from sid_index.kmeans import KMeansParams, TorchBackend
    from sid_index.rq import train_rq_kmeans

    x = clustered(n)
    return lambda: train_rq_kmeans(x, [256] * 3, TorchBackend("cpu"), KMeansParams(iters=10, seed=0)), n


def _metrics(n: int, work: Path) -> tuple[Callable[[], object], int]:
    from benchmarks.sid_metrics import SIZES as BOOKS
    from benchmarks.sid_metrics import codes_for
    from quality.sid_metrics import distribution_metrics

    codes = codes_for(n)
    return lambda: distribution_metrics(codes, BOOKS), n


STAGES: dict[str, Callable[[int, Path], tuple[Callable[[], object], int]]] = {
    "ingest": _ingest,
    "publish": _publish,
    "embed": _embed,
    "sid_train": _sid_train,
    "metrics": _metrics,
}
INPUTS: dict[str, Callable[[int, Path], None]] = {"ingest": _events, "publish": _publish_inputs}  # made beforehand


def measure(stage: str, size: int, work: Path) -> dict:
    """One stage at one size, in this process (its files made beforehand in `work`): its seconds and peak bytes,
    in all and per unit."""
    call, units = STAGES[stage](size, work)
    _, peak, seconds = peak_above_start(call)
    return {
        "stage": stage,
        "size": size,
        "units": units,
        "seconds": seconds,
        "units_per_s": units / seconds,
        "peak_bytes": peak,
        "peak_bytes_per_unit": peak / units,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        what, stage, size, work = args.one
        if what == "inputs":
            INPUTS[stage](int(size), Path(work))
        else:
            print(json.dumps(measure(stage, int(size), Path(work))))
        return
    results = []
    for stage in args.stages:
        for size in SIZES[stage]:
            with tempfile.TemporaryDirectory(prefix=f"sidforge-capacity-{stage}-") as work:
                steps = (["inputs"] if stage in INPUTS else []) + ["measure"]
                for what in steps:  # each in a fresh process: the inputs' memory never hides the stage's
                    cmd = [sys.executable, "-m", "benchmarks.capacity", "--one", what, stage, str(size), work]
                    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            results.append(json.loads(done.stdout.splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    save("capacity-cpu", {"results": results}, device="cpu")


if __name__ == "__main__":
    main()

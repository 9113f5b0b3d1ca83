"""Does the gate predict the probe? FORGE's training-free metrics against the GR probe's HR@K over many builds.

    python -m benchmarks.metric_correlation [--scale demo] [--epochs 8] [--train-examples 8000] [--test-examples 1000]

One generated catalogue with planted structure (items near category centroids; users browse a category and its
related ones), built many ways: RQ-KMeans and RQ-VAE at several codebook sizes, each collision policy, weaker
embeddings (the catalogue's vectors with added noise, as a worse embedding model would give) and random SIDs.
For each build: the gate's metrics as the `sid_build_quality` check computes them (`quality.evaluate`: FORGE's
Gini, embedding hitrate@30, collision rates, reconstruction error) and the probe's HR@K/NDCG@K
(`quality.gr_probe.probe_space`) trained on every user's events but the last and tested on the last. Then the
Spearman correlation of each metric with the probe's HR@10 and HR@100, a scatter plot and gate thresholds read
off the builds. Saves benchmarks/results/metric_correlation-cpu.json and metric_correlation.svg, and prints the
README's tables.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import pyarrow as pa

from benchmarks.results_file import RESULTS, save
from ingest.synthetic import SCALES, Generator
from quality.evaluate import EvalSettings, evaluate_build
from quality.gr_probe import ProbeConfig, SidSpace, probe_space
from quality.hitrate import random_codes, sessions_from_ids
from sid_index.build import BuildConfig, assign, sample_rows, train
from sid_index.collisions import resolve


@dataclass(frozen=True)
class Variant:
    """One build: its settings, noise added to the unit embeddings first (0: none), or uniformly random codes."""

    name: str
    config: BuildConfig
    noise: float = 0.0
    random: bool = False


def _rq(sizes: tuple[int, ...], **kw) -> BuildConfig:
    return BuildConfig(sizes=sizes, device="cpu", **kw)


VARIANTS = (
    Variant("rq-kmeans 3x64", _rq((64, 64, 64))),
    Variant("rq-kmeans 3x64 random_capacity", _rq((64, 64, 64), collision="random_capacity")),
    Variant("rq-kmeans 3x64 suffix", _rq((64, 64, 64), collision="suffix")),
    Variant("rq-kmeans 3x64 no resolution", _rq((64, 64, 64), collision="none")),
    Variant("rq-kmeans 3x16", _rq((16, 16, 16))),
    Variant("rq-kmeans 3x256", _rq((256, 256, 256))),
    Variant("rq-kmeans 2x64", _rq((64, 64))),
    Variant("rq-vae 3x64", _rq((64, 64, 64), method="rq-vae")),
    Variant("rq-vae 3x16", _rq((16, 16, 16), method="rq-vae")),
    Variant("rq-kmeans 3x64 noisy embeddings (2.5)", _rq((64, 64, 64)), noise=2.5),
    Variant("rq-kmeans 3x64 noisy embeddings (4)", _rq((64, 64, 64)), noise=4.0),
    Variant("rq-kmeans 3x64 noisy embeddings (6)", _rq((64, 64, 64)), noise=6.0),
    Variant("random 3x64", _rq((64, 64, 64), collision="none"), random=True),
    Variant("random 3x16", _rq((16, 16, 16), collision="none"), random=True),
)
METRICS = {  # metric: +1 when a higher value should mean a better build, -1 when lower should
    "embedding_hitrate": 1,
    "hitrate_share_of_raw": 1,
    "embedding_hitrate_resolved": 1,
    "neighbour_recall_at_k": 1,
    "reconstruction_error": -1,
    "gini": -1,
    "collision_rate_raw": -1,
    "collision_rate": -1,
    "min_utilisation": 1,
}
PROBED = ("probe_hr_at_10", "probe_hr_at_100")
HISTORY, PROBE_HISTORY = 20, 10


def examples(scale: str, seed: int, train_cap: int) -> tuple[list[str], np.ndarray, list[dict], list[dict]]:
    """Item ids, unit embeddings, and the probe's rows: every user's events but the last as targets of train rows
    (a seeded sample of `train_cap`), the last as the test row; histories are the 20 events before each target."""
    gen = Generator(scale, seed)
    sequences = gen.events().group_by("user_id", maintain_order=True).agg("item_id")["item_id"].to_list()
    train_rows, test_rows = [], []
    for items in sequences:
        if len(items) < 3:
            continue
        train_rows += [
            {"history_items": items[max(0, t - HISTORY) : t], "target_items": [items[t]]}
            for t in range(1, len(items) - 1)
        ]
        test_rows.append({"history_items": items[-HISTORY - 1 : -1], "target_items": [items[-1]]})
    keep = np.sort(np.random.default_rng(seed).choice(len(train_rows), min(train_cap, len(train_rows)), replace=False))
    return list(gen.item_ids.astype(str)), gen.embeddings(), [train_rows[i] for i in keep], test_rows


def noisy(x: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Unit vectors of `x` plus Gaussian noise of norm about `noise` (a weaker embedding of the same items)."""
    rng = np.random.default_rng(seed)
    y = x + noise * rng.standard_normal(x.shape, dtype=np.float32) / np.float32(np.sqrt(x.shape[1]))
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def _stream(ids: list[str], x: np.ndarray):
    return lambda: iter(
        [
            pa.record_batch(
                {
                    "item_id": pa.array(ids),
                    "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]),
                }
            )
        ]
    )


def build(variant: Variant, ids: list[str], x: np.ndarray) -> tuple:
    """(model, raw codes, resolution) of `variant` on vectors `x`; random codes are decoded by an RQ-KMeans model."""
    config, n = variant.config, len(ids)
    model = train(
        x[sample_rows(n, config.train_sample, config.seed)],
        replace(config, method="rq-kmeans") if variant.random else config,
        n,
    )
    if variant.random:
        raw = random_codes(n, model.sizes, 1)
        return model, raw, resolve(raw, raw[:, -1:], np.zeros((n, 1), np.float32), model.sizes, config.collision)
    assigned = assign(model, _stream(ids, x), config)
    return model, assigned.raw_codes, assigned.resolution


def run(args: argparse.Namespace) -> list[dict]:
    """Every variant's metrics and probe figures."""
    ids, unit, train_rows, test_rows = examples(args.scale, args.seed, args.train_examples)
    test_rows = test_rows[: args.test_examples]
    sessions = sessions_from_ids(
        [r["history_items"] for r in test_rows], [r["target_items"][0] for r in test_rows], ids, args.test_examples
    )
    settings = EvalSettings(sessions=args.test_examples, gallery=len(ids), device="cpu")
    probe_config = ProbeConfig(epochs=args.epochs, history_items=PROBE_HISTORY, seed=args.seed, max_examples=None)
    rows = []
    for variant in VARIANTS:
        started = time.perf_counter()
        x = noisy(unit, variant.noise, args.seed + 5) if variant.noise else unit
        model, raw, resolution = build(variant, ids, x)
        metrics = evaluate_build(
            raw, resolution.codes, model.sizes, x, model.decode, sessions, settings, resolution.sizes
        )
        built_s = time.perf_counter() - started
        space = SidSpace(ids, resolution.codes, resolution.sizes)
        figures = probe_space(train_rows, test_rows, space, probe_config, from_items=True)
        rows.append(
            {
                "build": variant.name,
                "method": "random" if variant.random else variant.config.method,
                "sizes": resolution.sizes,
                "collision_policy": variant.config.collision,
                "noise": variant.noise,
                "collision_rate_raw": resolution.report.get("collision_rate_before", metrics["collision_rate"]),
                "min_utilisation": min(metrics["utilisation_per_level"]),
                "utilisation_per_level": metrics["utilisation_per_level"],
                **{k: metrics[k] for k in METRICS if k in metrics},
                "embedding_hitrate_raw": metrics["embedding_hitrate_raw"],
                "hitrate_share_of_raw": metrics["embedding_hitrate"] / max(metrics["embedding_hitrate_raw"], 1e-12),
                **figures,
                "build_and_metrics_s": built_s,
                "probe_s": time.perf_counter() - started - built_s,
            }
        )
        print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict) -> str:
    return (
        f"{r['build']:<40} HR@10 {r['probe_hr_at_10']:.3f} HR@100 {r['probe_hr_at_100']:.3f} | hitrate "
        f"{r['embedding_hitrate']:.3f} gini {r['gini']:.3f} collisions {r['collision_rate_raw']:.3f}->"
        f"{r['collision_rate']:.3f} recon {r['reconstruction_error']:.4f} ({r['probe_s']:.0f}s probe)"
    )


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    ra = pl.Series(a).rank("average").to_numpy()
    rb = pl.Series(b).rank("average").to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def correlations(rows: list[dict]) -> dict[str, dict[str, float]]:
    """metric -> {probe figure: Spearman's rho over the builds}."""
    return {
        m: {p: spearman(np.array([r[m] for r in rows]), np.array([r[p] for r in rows])) for p in PROBED}
        for m in METRICS
    }


def thresholds(rows: list[dict], rho: dict[str, dict[str, float]], share: float = 0.9) -> dict[str, dict]:
    """For each metric that predicts HR@10 (rho >= 0.5 in the expected direction): the loosest limit every
    build within `share` of the best HR@10 meets, and which builds it would turn away."""
    best = max(r["probe_hr_at_10"] for r in rows)
    good = [r for r in rows if r["probe_hr_at_10"] >= share * best]
    out = {}
    for metric, sign in METRICS.items():
        if not sign * rho[metric]["probe_hr_at_10"] >= 0.5:
            continue
        limit = min(sign * r[metric] for r in good) * sign
        out[metric] = {
            "limit": limit,
            "rule": f"{metric} {'>=' if sign > 0 else '<='} {limit:.4g}",
            "turned_away": [r["build"] for r in rows if sign * r[metric] < sign * limit],
        }
    return out


def scatter(rows: list[dict], rho: dict[str, dict[str, float]]) -> str:
    """A grid of the metrics against the probe's HR@10, one marker per method; saved as SVG, path returned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ["embedding_hitrate", "hitrate_share_of_raw", "reconstruction_error", "gini", "collision_rate_raw"]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 3.4), sharey=True)
    markers = {"rq-kmeans": ("o", "#1f77b4"), "rq-vae": ("s", "#ff7f0e"), "random": ("x", "#7f7f7f")}
    for ax, metric in zip(axes, shown, strict=True):
        for method, (marker, colour) in markers.items():
            mine = [r for r in rows if r["method"] == method]
            ax.scatter(
                [r[metric] for r in mine],
                [r["probe_hr_at_10"] for r in mine],
                marker=marker,
                color=colour,
                label=method,
            )
        ax.set_title(f"{metric}\nSpearman rho {rho[metric]['probe_hr_at_10']:+.2f}", fontsize=10)
        ax.set_xlabel(metric)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("probe HR@10")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out = RESULTS / "metric_correlation.svg"
    fig.savefig(out, format="svg")
    plt.close(fig)
    return str(out)


def markdown(rows: list[dict], rho: dict[str, dict[str, float]], limits: dict[str, dict]) -> str:
    """The README's tables: builds, correlations and suggested thresholds."""
    out = [
        "| build | probe HR@10 | HR@100 | embedding hitrate | reconstruction error | Gini | collisions raw → resolved "
        "| utilisation per level |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["probe_hr_at_10"]):
        out.append(
            f"| {r['build']} | {r['probe_hr_at_10']:.3f} | {r['probe_hr_at_100']:.3f} | {r['embedding_hitrate']:.3f} | "
            f"{r['reconstruction_error']:.4f} | {r['gini']:.3f} | {r['collision_rate_raw']:.3f} → "
            f"{r['collision_rate']:.3f} | {' / '.join(f'{u:.2f}' for u in r['utilisation_per_level'])} |"
        )
    out += ["", "| metric | Spearman rho with HR@10 | with HR@100 |", "|---|---|---|"]
    out += [f"| {m} | {v['probe_hr_at_10']:+.2f} | {v['probe_hr_at_100']:+.2f} |" for m, v in rho.items()]
    out += ["", "| suggested gate rule | builds it turns away |", "|---|---|"]
    out += [f"| `{v['rule']}` | {', '.join(v['turned_away']) or 'none'} |" for v in limits.values()]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="demo", choices=sorted(SCALES))
    parser.add_argument("--epochs", type=int, default=8, help="probe training epochs")
    parser.add_argument("--train-examples", type=int, default=8000, help="probe training examples (a seeded sample)")
    parser.add_argument("--test-examples", type=int, default=1000, help="probe test examples and hitrate sessions")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = run(args)
    rho = correlations(rows)
    limits = thresholds(rows, rho)
    table = markdown(rows, rho, limits)
    print(table)
    print(f"scatter plot: {scatter(rows, rho)}")
    save(
        "metric_correlation-cpu",
        {"settings": vars(args), "builds": rows, "spearman": rho, "thresholds": limits, "markdown": table},
    )


if __name__ == "__main__":
    main()

"""SID quality per method on generated catalogues with planted structure, with FORGE's metrics as FORGE computes them.

    python -m benchmarks.sid_quality [--scales demo small large] [--sessions 5000] [--gallery 500000]

For each catalogue (items near category centroids; users browse a category and its related ones): RQ-KMeans
(torch, the default; faiss, the reference), RQ-VAE (sidforge preset) and random SIDs of the same sizes, each
with knn_capacity collision resolution (capacity 5). Reported per build: FORGE's Gini (occupied SIDs) and the
padded one, collision rates before and after resolution, occupied raw SIDs, raw per-level perplexity, and the
embedding hitrate (K = 30, self excluded, normalised decoded raw codes) with its ceiling (raw embeddings) and
floor (random codes). Sessions: each sampled user's last event is the target, the 20 before it the history.
Goals: the default method's hitrate at least 80 % of the ceiling; no level's raw perplexity below a quarter
of faiss's. Saves benchmarks/results/sid_quality<tag>-cpu.json and prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import polars as pl
import pyarrow as pa

from benchmarks.results_file import save
from ingest.synthetic import SCALES, Generator
from quality.evaluate import EvalSettings, evaluate_build, gallery_rows
from quality.hitrate import random_codes, sessions_from_ids
from sid_index.build import BuildConfig, assign, sample_rows, train
from sid_index.collisions import resolve

METHODS = {
    "rq-kmeans torch": BuildConfig(backend="torch", device="cpu"),
    "rq-kmeans faiss": BuildConfig(backend="faiss", device="cpu"),
    "rq-vae": BuildConfig(method="rq-vae", device="cpu"),
}
HISTORY = 20


def catalogue(scale: str, sessions: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[list[str]], list[str]]:
    """Embeddings, item ids, and `2 x sessions` sampled users' (history, target)."""
    gen = Generator(scale, seed)
    events = gen.events().sort("user_id", "timestamp")
    users = events["user_id"].unique().sort()
    picked = users.gather(
        np.sort(np.random.default_rng(seed).choice(len(users), min(len(users), 2 * sessions), replace=False))
    )
    seqs = (
        events.filter(pl.col("user_id").is_in(picked.implode()))
        .group_by("user_id", maintain_order=True)
        .agg(pl.col("item_id"))
        .filter(pl.col("item_id").list.len() >= 2)
    )
    histories = [s[-HISTORY - 1 : -1] for s in seqs["item_id"].to_list()]
    targets = [s[-1] for s in seqs["item_id"].to_list()]
    return gen.embeddings(), list(gen.item_ids.astype(str)), histories, targets


def _stream(ids: list[str], x: np.ndarray, rows: int = 262_144):
    for start in range(0, len(ids), rows):
        yield pa.record_batch(
            {
                "item_id": pa.array(ids[start : start + rows]),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x[start : start + rows].ravel()), x.shape[1]),
            }
        )


def run(scales: list[str], sessions: int, gallery: int, rqvae_epochs: int, rqvae_sample: int) -> list[dict]:
    rows = []
    for scale in scales:
        x, ids, histories, targets = catalogue(scale, sessions)
        n = len(ids)
        keep = gallery_rows(n, np.zeros(0, dtype=np.int64), gallery, 0)
        found = sessions_from_ids(histories, targets, [ids[i] for i in keep], sessions)
        settings = EvalSettings(sessions=sessions, gallery=gallery, device="cpu")
        reference = None
        for name, method in [*METHODS.items(), ("random", METHODS["rq-kmeans torch"])]:
            config = replace(method, rqvae_epochs=rqvae_epochs)
            started = time.perf_counter()
            if name == "random":  # uniformly random codes, decoded by the default build's codebooks
                model = reference
                raw = random_codes(n, model.sizes, 1)
                resolution = resolve(raw, raw[:, -1:], np.zeros((n, 1), np.float32), model.sizes, "none")
            else:
                limit = rqvae_sample if config.method == "rq-vae" else config.train_sample
                model = train(x[sample_rows(n, limit, 0)], config, n)
                assigned = assign(model, lambda ids=ids, x=x: _stream(ids, x), config)
                raw, resolution = assigned.raw_codes, assigned.resolution
            build_s = time.perf_counter() - started
            if name == "rq-kmeans torch":
                reference = model
            started = time.perf_counter()
            m = evaluate_build(
                raw[keep], resolution.codes[keep], model.sizes, x[keep], model.decode, found, settings, resolution.sizes
            )
            rows.append(
                {
                    "scale": scale,
                    "items": n,
                    "method": name,
                    "sizes": model.sizes,
                    "build_s": build_s,
                    "evaluate_s": time.perf_counter() - started,
                    "sessions": len(found),
                    "collision_rate_raw": resolution.report.get("collision_rate_before", m["collision_rate"]),
                    **{
                        k: m[k]
                        for k in (
                            "gini",
                            "gini_padded_to_items",
                            "gini_raw",
                            "collision_rate",
                            "occupied_sids_raw",
                            "perplexity_per_level",
                            "utilisation_per_level",
                            "embedding_hitrate",
                            "embedding_hitrate_resolved",
                            "embedding_hitrate_raw",
                            "embedding_hitrate_random",
                            "reconstruction_error",
                        )
                    },
                }
            )
            print(_line(rows[-1]), flush=True)
    for row in rows:
        faiss = next(r for r in rows if r["scale"] == row["scale"] and r["method"] == "rq-kmeans faiss")
        row["hitrate_share_of_ceiling"] = row["embedding_hitrate"] / max(row["embedding_hitrate_raw"], 1e-12)
        row["min_perplexity_share_of_faiss"] = min(
            p / f for p, f in zip(row["perplexity_per_level"], faiss["perplexity_per_level"], strict=True)
        )
    return rows


def _line(r: dict) -> str:
    return (
        f"{r['scale']:>6} {r['method']:<16} gini {r['gini']:.3f} coll {r['collision_rate_raw']:.3f}->"
        f"{r['collision_rate']:.3f} raw SIDs {r['occupied_sids_raw']:>8,} perplexity "
        f"{'/'.join(f'{p:.1f}' for p in r['perplexity_per_level'])} hitrate {r['embedding_hitrate']:.3f} "
        f"(ceiling {r['embedding_hitrate_raw']:.3f}, floor {r['embedding_hitrate_random']:.3f}) "
        f"build {r['build_s']:.1f}s eval {r['evaluate_s']:.1f}s"
    )


def markdown(rows: list[dict]) -> str:
    """The README table."""
    out = [
        "| catalogue | method | Gini | collisions raw → resolved | raw SIDs | raw perplexity per level | "
        "hitrate (ceiling, floor) | share of ceiling |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['scale']} ({r['items']:,} items, {len(r['sizes'])} × {r['sizes'][0]}) | {r['method']} | "
            f"{r['gini']:.3f} | {r['collision_rate_raw']:.3f} → {r['collision_rate']:.3f} | "
            f"{r['occupied_sids_raw']:,} | {' / '.join(f'{p:.1f}' for p in r['perplexity_per_level'])} | "
            f"{r['embedding_hitrate']:.3f} ({r['embedding_hitrate_raw']:.3f}, "
            f"{r['embedding_hitrate_random']:.3f}) | {r['hitrate_share_of_ceiling']:.0%} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["demo", "small", "large"], choices=sorted(SCALES))
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--gallery", type=int, default=500_000)
    parser.add_argument("--rqvae-epochs", type=int, default=20)
    parser.add_argument("--rqvae-sample", type=int, default=200_000, help="RQ-VAE trains on at most this many items")
    parser.add_argument("--tag", default="", help="suffix of the results file, sid_quality<tag>-cpu.json")
    args = parser.parse_args()
    rows = run(args.scales, args.sessions, args.gallery, args.rqvae_epochs, args.rqvae_sample)
    print(markdown(rows))
    save(f"sid_quality{args.tag}-cpu", {"settings": vars(args), "builds": rows, "markdown": markdown(rows)})


if __name__ == "__main__":
    main()

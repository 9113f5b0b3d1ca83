"""Driver memory per item of the in-process SID steps, measured from outside the process at two catalogue sizes.

    python -m benchmarks.driver_memory [--sizes 100000 300000] [--dim 512]

For each size a lake gets that many random unit 512-d embeddings of one model. Each stage then runs in a child
process of its own; the parent reads the child's peak resident set (`wait4`'s `ru_maxrss`) when it exits, and
subtracts a child that imports the same modules and does nothing. Bytes per item are the difference between the
two sizes over the difference in items, so fixed costs (libraries, the sample, the codebooks) cancel out.
Stages, each beside the previous implementation as its baseline:
- `codebooks read`: what `sid_codebooks` reads: count (from the log), fingerprint and a seeded sample of 20,000
  rows (`builds.drift`: one data file at a time, only the ids sorted); `previous codebooks read`: the same
  through a Polars scan sorted by item id;
- `assign input`: the stream `item_sids` assigns from in process; `previous assign input`: the sorted scan's
  batches it used before;
- `assign`: `item_sids` in process end to end: every item encoded from the stream and its collisions resolved
  (`sid_index.build.assign`, 3 x 256 RQ-KMeans trained on the sample);
- `gate read`: what `sid_build_quality` reads before its metrics: every item's codes, and the embeddings of a
  gallery of 20,000 items picked from the stream; `previous gate read`: codes and embeddings joined and sorted.
Results go to benchmarks/results/driver_memory-cpu.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.results_file import save

MODEL = "bench"
STAGES = (
    "nothing",
    "previous codebooks read",
    "codebooks read",
    "previous assign input",
    "assign input",
    "assign",
    "previous gate read",
    "gate read",
)
BASELINES = {
    "codebooks read": "previous codebooks read",
    "assign input": "previous assign input",
    "gate read": "previous gate read",
}
GALLERY = 20_000  # the gate's gallery here (QualityResource.gallery_items, default 500,000: 1 GiB of 512-d vectors)
SAMPLE = 20_000
CHUNK = 20_000  # rows a data file (and its one row group) holds: what a streaming reader holds at once


def fill(lake_root: str, items: int, dim: int, seed: int = 0) -> None:
    """`items` random unit embeddings of model MODEL in a new lake, written in chunks."""
    from lake import Lake

    lake, rng = Lake(lake_root), np.random.default_rng(seed)
    for start in range(0, items, CHUNK):
        n = min(CHUNK, items - start)
        vectors = rng.standard_normal((n, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = pa.table(
            {
                "item_id": [f"i{start + k:09d}" for k in range(n)],
                "model": [MODEL] * n,
                "modalities": ["precomputed"] * n,
                "dim": pa.array([dim] * n, pa.int32()),
                "embedding": pa.FixedSizeListArray.from_arrays(vectors.ravel(), dim),
                "content_hash": [""] * n,
                "source": ["bench"] * n,
                "run_id": ["bench"] * n,
            }
        )
        lake.append("item_embeddings", rows, run_id="bench")
        codes = rng.integers(0, 256, (n, 3), dtype=np.int32).tolist()
        sids = {
            "item_id": rows.column("item_id"),
            "codes_raw": pa.array(codes, pa.list_(pa.int32())),
            "codes": pa.array(codes, pa.list_(pa.int32())),
            "sid": ["-"] * n,
            "source": ["bench"] * n,
            "run_id": ["bench"] * n,
            "build_id": [MODEL] * n,
        }
        lake.append("item_sids", pa.table(sids), run_id="bench")


def child(stage: str, lake_root: str) -> None:
    """Run one stage over the lake (in a process of its own)."""
    import polars as pl

    from builds.drift import embeddings, fingerprint, item_count, item_ids, sample_of
    from lake import Lake
    from lake.frames import list_matrix
    from quality.evaluate import gallery_rows
    from sid_index.build import BuildConfig, assign, sample_rows, train
    from sid_index.rq import vectors_of

    lake = Lake(lake_root)
    previous = lake.scan("item_embeddings").filter(pl.col("model") == MODEL).select("item_id", "embedding")
    previous = previous.sort("item_id")
    stream = embeddings(lake, MODEL)
    if stage == "previous codebooks read":
        n = previous.select(pl.len()).collect().item()
        previous.select(pl.struct("item_id", "embedding").hash(seed=1).sum()).collect()
        picked = pl.Series(sample_rows(n, SAMPLE, 0).astype(np.uint32)).implode()
        previous.with_row_index("row").filter(pl.col("row").is_in(picked)).collect()
    elif stage == "codebooks read":
        n = item_count(lake, MODEL)
        fingerprint(stream)
        sample_of(stream, sample_rows(n, SAMPLE, 0))
    elif stage == "previous assign input":
        for _ in previous.collect_batches(chunk_size=65_536):
            pass
    elif stage == "assign input":
        for _ in stream():
            pass
    elif stage == "previous gate read":
        sids = (
            lake.scan("item_sids")
            .filter(pl.col("build_id") == MODEL)
            .select("item_id", "codes_raw", "codes")
            .join(previous, on="item_id")
            .sort("item_id")
            .collect()
        )
        np.asarray(sids["codes_raw"].to_list(), dtype=np.int32)
        np.asarray(sids["codes"].to_list(), dtype=np.int32)
        vectors_of(sids.select("embedding").to_arrow())
    elif stage == "gate read":
        sids = (
            lake.scan("item_sids")
            .filter(pl.col("build_id") == MODEL)
            .select("item_id", "codes_raw", "codes")
            .filter(pl.col("item_id").is_in(item_ids(stream).implode()))
            .sort("item_id")
            .collect()
        )
        list_matrix(sids["codes_raw"]), list_matrix(sids["codes"])
        rows = gallery_rows(len(sids), np.zeros(0, dtype=np.int64), GALLERY, 0)
        vectors_of(sample_of(stream, rows, sids["item_id"]).select("embedding").to_arrow())
    elif stage == "assign":
        n = item_count(lake, MODEL)
        config = BuildConfig(sizes=(256, 256, 256), iters=5, train_sample=SAMPLE, device="cpu")
        model = train(vectors_of(sample_of(stream, sample_rows(n, SAMPLE, 0)).to_arrow()), config, n)
        assign(model, stream, config)


def peak_kib(stage: str, lake_root: str) -> int:
    """The peak resident set (KiB) of a child running `stage`, read by this process when the child exits."""
    command = [sys.executable, "-m", "benchmarks.driver_memory", "--child", stage, "--lake", lake_root]
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"stage {stage!r} failed")
    return usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 300_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--child", choices=STAGES)
    parser.add_argument("--lake")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.lake)
        return
    peaks: dict[int, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            root = f"{tmp}/lake-{size}"
            fill(root, size, args.dim)
            peaks[size] = {stage: peak_kib(stage, root) for stage in STAGES}
    small, large = args.sizes
    rows = []
    for stage in STAGES[1:]:
        above = {s: (peaks[s][stage] - peaks[s]["nothing"]) * 1024 for s in args.sizes}
        rows.append(
            {
                "stage": stage,
                "peak_above_imports_bytes": above,
                "bytes_per_item": (above[large] - above[small]) / (large - small),
            }
        )
    per_item = {row["stage"]: row["bytes_per_item"] for row in rows}
    for row in rows:
        baseline = BASELINES.get(row["stage"])
        row["ratio_to_previous"] = per_item[row["stage"]] / per_item[baseline] if baseline else None
    print(f"{'stage':<26}{f'MiB at {small:,}':>16}{f'MiB at {large:,}':>16}{'B/item':>10}{'/ previous':>12}")
    for row in rows:
        mib = [row["peak_above_imports_bytes"][s] / 2**20 for s in args.sizes]
        ratio = "" if row["ratio_to_previous"] is None else f"{row['ratio_to_previous']:.3f}"
        print(f"{row['stage']:<26}{mib[0]:>16.0f}{mib[1]:>16.0f}{row['bytes_per_item']:>10.0f}{ratio:>12}")
    payload = {"sizes": args.sizes, "dim": args.dim, "sample": SAMPLE, "stages": rows, "peaks_kib": peaks}
    save("driver_memory-cpu", payload)


if __name__ == "__main__":
    main()

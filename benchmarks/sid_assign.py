"""SID assignment at catalogue scale: memory per item in process, and the Spark path against the in-process one.

    python -m benchmarks.sid_assign [--items 1000000 3000000 10000000] [--spark-items 300000]
                                    [--encode-items 2000000 --encode-device cuda]

Memory: each size runs in a fresh subprocess; a sampler reads the process's resident set every 5 ms while
`assign` runs over a generated stream (32-d vectors, 3 x 256 codebooks trained on a 50 k sample, knn_capacity
with capacity 5), and the peak above the resident set before the call, divided by the items, is reported
beside the previous implementation's holding (a Python string per id plus 32 candidates, their distances and
the per-level errors: measured on the smallest size). Spark: the same catalogue, written to a lake's
item_embeddings table, through `assign_with_spark` on local[2] against `assign` in this process reading it
with Polars (both on 2 cores), each also writing the build's item_sids partition into the lake (the Spark
tasks stage it, the in-process side writes `Assigned.frame()`), items per second and the ratio, on the
session's second run (the first, also reported, starts the Python workers). Saves
benchmarks/results/sid_assign-cpu.json (memory) and sid_assign_spark-cpu.json (Spark); `--items` with no sizes
or `--spark-items 0` skips that part. `--encode-items` times the first pass of `assign` (`encode_stream`,
512-d, 3 x 8192) against one `encode` of the whole array (sid_assign_encode-<device>.json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa

from benchmarks.peak_memory import peak_above_start
from benchmarks.results_file import save

DIM, SIZES, BATCH = 32, [256, 256, 256], 65_536


def _batch(start: int, rows: int, centres: np.ndarray) -> pa.RecordBatch:
    rng = np.random.default_rng(start)
    x = centres[rng.integers(0, len(centres), rows)] + 0.5 * rng.standard_normal((rows, DIM), dtype=np.float32)
    ids = pa.array([str(10**9 + i) for i in range(start, start + rows)])  # AL-GR-like numeric ids
    return pa.record_batch({"item_id": ids, "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM)})


def stream(n: int):
    """A function returning the generated catalogue's batches (the same ones on every call)."""
    centres = np.random.default_rng(0).standard_normal((50_000, DIM), dtype=np.float32)
    return lambda: (_batch(s, min(BATCH, n - s), centres) for s in range(0, n, BATCH))


def _model():
    from sid_index.kmeans import KMeansParams, TorchBackend
    from sid_index.rq import train_rq_kmeans, vectors_of

    sample = vectors_of(pa.Table.from_batches(list(stream(50_000)())))
    return train_rq_kmeans(sample, SIZES, TorchBackend("cpu"), KMeansParams(iters=10, seed=0))


def measure_memory(n: int, previous: bool) -> dict:
    """Peak resident bytes per item while assigning `n` items (in this process; call it in a fresh one)."""
    from sid_index.build import BuildConfig, assign
    from sid_index.rq import encode_batches

    model = _model()
    config = BuildConfig(sizes=tuple(SIZES), capacity=5, candidates=32)
    assigned, peak, seconds = peak_above_start(lambda: assign(model, stream(n), config))
    out = {
        "items": n,
        "bytes_per_item": peak / n,
        "seconds": seconds,
        "items_with_candidates": assigned.timings["items_with_candidates"],
        "collision_rate_before": assigned.resolution.report["collision_rate_before"],
        "collision_rate_after": assigned.resolution.report["collision_rate_after"],
    }
    if previous:  # what the previous implementation held for every item before resolving
        ids: list[str] = []
        held = 0
        for batch_ids, encoded in encode_batches(model, stream(n)(), top=32):
            ids += batch_ids
            held += sum(a.nbytes for a in (encoded.codes, encoded.candidates, encoded.candidate_distances))
            held += encoded.errors.nbytes
        held += sum(sys.getsizeof(i) + 8 for i in ids)
        out["previous_bytes_per_item"] = held / n
    return out


def _lake(n: int, root: str):
    """The generated catalogue as a lake's item_embeddings table, one file per batch."""
    from lake.lake import Lake

    lake = Lake(root)
    for batch in stream(n)():
        rows = batch.num_rows
        constant = {"modalities": "image", "source": "benchmark", "run_id": "benchmark", "model": "m"}
        lake.append(
            "item_embeddings",
            pa.table(
                {
                    "item_id": batch.column("item_id"),
                    "embedding": batch.column("embedding").cast(pa.list_(pa.float32())),
                    "dim": pa.array(np.full(rows, DIM, np.int32)),
                    "content_hash": pa.nulls(rows, pa.string()),
                    **{k: pa.array([v] * rows) for k, v in constant.items()},
                }
            ),
            run_id="benchmark",
        )
    return lake


def spark_against_in_process(n: int) -> dict:
    """Items per second of the Spark path on local[2] and of the in-process path, both reading the same
    item_embeddings table of a lake and writing the build's item_sids partition into it."""
    import tempfile

    import polars as pl

    from builds.spark_assign import SidsTarget, assign_with_spark
    from lake.spark import spark_session, table_files
    from sid_index.build import BuildConfig, assign

    model = _model()
    config = BuildConfig(sizes=tuple(SIZES), capacity=5, candidates=32)
    with tempfile.TemporaryDirectory(prefix="sidforge-bench-") as root:
        lake = _lake(n, root)
        frame = lake.scan("item_embeddings").filter(pl.col("model") == "m").select("item_id", "embedding")

        def batches():
            for chunk in frame.collect_batches(chunk_size=BATCH):
                yield from chunk.to_arrow().to_batches()

        started = time.perf_counter()
        local = assign(model, batches, config)
        labels = {"source": pl.lit("bench"), "run_id": pl.lit("in-process"), "build_id": pl.lit("local")}
        lake.replace_partitions("item_sids", local.frame().with_columns(**labels), run_id="in-process")
        local_s = time.perf_counter() - started
        spark = spark_session("local[2]")
        source = table_files(spark, lake, "item_embeddings", where={"model": "m"}, columns=["item_id", "embedding"])
        seconds = []
        for run in range(2):  # the first run also starts the Python workers and imports torch in them
            started = time.perf_counter()
            written = assign_with_spark(model, source, config, SidsTarget(lake, "spark", "bench", f"spark-{run}"))
            seconds.append(time.perf_counter() - started)
        spark.stop()
        stored = {
            build: lake.scan("item_sids").filter(pl.col("build_id") == build).select("item_id", "codes").collect()
            for build in ("local", "spark")
        }
    cold_s, spark_s = seconds
    return {
        "items": n,
        "cores": 2,
        "files": -(-n // BATCH),
        "includes_item_sids_write": True,
        "in_process_items_per_s": n / local_s,
        "spark_items_per_s": n / spark_s,
        "spark_over_in_process_time": spark_s / local_s,
        "spark_first_run_s": cold_s,
        "spark_encode_s": written.figures["assign_s"],
        "spark_resolve_and_write_s": written.figures["resolve_s"],
        "in_process_s": local_s,
        "identical_sids": stored["spark"].sort("item_id").equals(stored["local"].sort("item_id")),
    }


def stream_encoding(n: int, dim: int, size: int, device: str) -> dict:
    """Items per second of the assignment's first pass (`encode_stream` over batches of BATCH rows) against one
    `encode` call on the whole array, RQ-KMeans 3 x `size` on `device` (TF32 on CUDA), random `dim`-d vectors."""
    import torch

    from sid_index import build
    from sid_index.kmeans import KMeansParams, TorchBackend
    from sid_index.rq import train_rq_kmeans

    generator = torch.Generator(device).manual_seed(0)
    x = torch.randn(n, dim, generator=generator, device=device).cpu().numpy()
    backend = TorchBackend(device, precision="tf32" if device == "cuda" else "fp32")
    model = train_rq_kmeans(x[: 64 * size], [size] * 3, backend, KMeansParams(iters=5, seed=0))
    ids = pa.array(np.arange(n).astype(str))
    table = pa.table({"item_id": ids, "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), dim)})
    out: dict = {"items": n, "dim": dim, "sizes": [size] * 3, "device": device, "batch_rows": BATCH}
    started = time.perf_counter()
    model.encode(x, top=1)
    out["whole_array_items_per_s"] = n / (time.perf_counter() - started)
    started = time.perf_counter()
    build.encode_stream(model, table.to_batches(BATCH))
    out["stream_items_per_s"] = n / (time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, nargs="*", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--spark-items", type=int, default=300_000)
    parser.add_argument("--encode-items", type=int, default=0, help="also time the first pass on this many items")
    parser.add_argument("--encode-device", default="cpu", help="device of that pass (cpu or cuda)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--previous", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_memory(args.one, args.previous)))
        return
    memory = []
    for i, n in enumerate(args.items):
        cmd = [sys.executable, "-m", "benchmarks.sid_assign", "--one", str(n), *(["--previous"] if i == 0 else [])]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        memory.append(result)
        print(json.dumps(result), flush=True)
    if memory:
        save("sid_assign-cpu", {"memory": memory}, device="cpu")
    if args.encode_items:
        encoding = stream_encoding(args.encode_items, 512, 8192, args.encode_device)
        print(json.dumps(encoding), flush=True)
        import torch

        gpu = torch.cuda.get_device_name(0) if args.encode_device == "cuda" else None
        save(f"sid_assign_encode-{args.encode_device}", {"encode": encoding}, gpu=gpu, torch=torch.__version__)
    if args.spark_items:
        spark = spark_against_in_process(args.spark_items)
        print(json.dumps(spark), flush=True)
        save("sid_assign_spark-cpu", {"spark": spark}, device="cpu")


if __name__ == "__main__":
    main()

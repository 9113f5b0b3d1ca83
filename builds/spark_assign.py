"""SID assignment and collision resolution on Spark, for catalogues beyond one machine.

The model's artefact bytes are broadcast; tasks encode item embeddings in Arrow batches (`mapInArrow`), then the
SID prefixes are dealt into parts (prefix modulo the part count, as `resolve_by_prefix` does in process), each
part resolved in one task (`applyInArrow`) by the same `resolve_on_demand` as the in-process path, which computes
candidates there, from the vectors carried along, for the items that must move only. Items only move within
their prefix and ties break on the item-id hash, so both paths give every item the same SID.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sid_index.artifact import artifact_bytes, load_artifact
from sid_index.build import Assigned, BuildConfig, tiebreaks
from sid_index.codec import keys, prefix_keys
from sid_index.collisions import Resolution, group_stats, resolve_on_demand
from sid_index.rq import SidModel, vectors_of

_MODELS: dict[str, SidModel] = {}  # per Python worker: the broadcast model, loaded once


def _model(data: bytes) -> SidModel:
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _MODELS:
        _MODELS.clear()
        _MODELS[digest] = load_artifact(data)
    return _MODELS[digest]


VECTOR = pa.list_(pa.float32())


def _codes_schema(levels: int, keep_vectors: bool) -> pa.Schema:
    return pa.schema(
        [
            ("item_id", pa.string()),
            ("codes", pa.list_(pa.int32())),
            ("priority", pa.float32()),
            ("tiebreak", pa.int64()),
            ("prefix", pa.int64()),
            *[(f"error_{level}", pa.float64()) for level in range(levels)],
            *([("embedding", VECTOR)] if keep_vectors else []),
        ]
    )


def _encode_task(model_data, levels: int, keep_vectors: bool):
    """The encoding pass: codes, distance to the own code, tie-break and SID prefix of each item (and its vector,
    when the resolution will need candidates)."""
    schema = _codes_schema(levels, keep_vectors)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = _model(model_data.value)
        for batch in batches:
            if not batch.num_rows:
                continue
            encoded = model.encode(vectors_of(batch), top=1)
            ids = pl.Series("item_id", batch.column("item_id")).cast(pl.String)
            codes = encoded.codes.astype(np.int32)
            columns = [
                ids.to_arrow(),
                pa.FixedSizeListArray.from_arrays(codes.ravel(), codes.shape[1]).cast(pa.list_(pa.int32())),
                pa.array(encoded.candidate_distances[:, 0].astype(np.float32)),
                pa.array(tiebreaks(ids).astype(np.int64)),
                pa.array(prefix_keys(codes, model.sizes)),
                *[pa.array(encoded.errors[:, level].astype(np.float64)) for level in range(levels)],
                *([batch.column("embedding").cast(VECTOR)] if keep_vectors else []),
            ]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    return run, schema


def _resolve_part(model_data, sizes: list[int], config: BuildConfig):
    """One part of the SID prefixes resolved in a task: the in-process resolution applied to the part alone,
    the candidates of the items that must move computed there from their vectors."""
    schema = pa.schema(
        [
            ("item_id", pa.string()),
            ("codes", pa.list_(pa.int32())),
            ("resolved", pa.list_(pa.int32())),
            ("unplaced", pa.string()),
        ]
    )
    width = config.candidates

    def run(group: pa.Table) -> pa.Table:
        frame = pl.from_arrow(group)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.sort("item_id")
        codes = _matrix(frame["codes"], np.int32)

        def candidates_of(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if not len(rows):
                return np.zeros((0, width), np.int32), np.zeros((0, width), np.float32)
            vectors = _matrix(frame["embedding"].gather(rows), np.float32)
            encoded = _model(model_data.value).encode(vectors, top=width)
            return encoded.candidates.astype(np.int32), encoded.candidate_distances.astype(np.float32)

        res = resolve_on_demand(
            codes,
            frame["priority"].to_numpy(),
            candidates_of,
            sizes,
            config.collision,
            config.capacity,
            config.seed,
            None,
            frame["tiebreak"].to_numpy().astype(np.uint32),
            width,
        )
        unplaced = np.full(frame.height, None, dtype=object)
        unplaced[res.unplaced] = "unplaced"
        return pa.table(
            {
                "item_id": frame["item_id"].to_arrow(),
                "codes": frame["codes"].to_arrow(),
                "resolved": pa.FixedSizeListArray.from_arrays(res.codes.ravel(), res.codes.shape[1]).cast(
                    pa.list_(pa.int32())
                ),
                "unplaced": pa.array(unplaced.tolist(), pa.string()),
            },
            schema=schema,
        )

    return run, schema


def _matrix(lists: pl.Series, dtype: type) -> np.ndarray:
    """Equal-length list values as an (n, width) array, without Python objects; (0, 1) when there are none."""
    if not len(lists):
        return np.zeros((0, 1), dtype)
    return lists.explode().to_numpy().astype(dtype, copy=False).reshape(len(lists), -1)


def assign_with_spark(model: SidModel, embeddings: DataFrame, config: BuildConfig) -> Assigned:
    """Assign every item of the Spark DataFrame `embeddings` (item_id, embedding) and resolve collisions on the
    cluster; the codes are gathered on the driver for the write (about 40 bytes per item)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    spark = embeddings.sparkSession
    sizes, levels = model.sizes, len(model.sizes)
    started = time.perf_counter()
    data = spark.sparkContext.broadcast(artifact_bytes(model))
    keep_vectors = config.collision == "knn_capacity"
    run, schema = _encode_task(data, levels, keep_vectors)
    first = embeddings.select("item_id", "embedding").mapInArrow(run, from_arrow_schema(schema)).persist()
    try:
        errors = first.agg(
            F.count("*").alias("n"), *[F.avg(f"error_{level}").alias(f"e{level}") for level in range(levels)]
        ).first()
        items = int(errors["n"]) if errors else 0
        parts = max(spark.sparkContext.defaultParallelism, -(-items // config.resolve_chunk_items))
        assigned_s = time.perf_counter() - started
        started = time.perf_counter()
        columns = ["item_id", "codes", "priority", "tiebreak", *(["embedding"] if keep_vectors else [])]
        rows = first.select(*columns, (F.col("prefix") % parts).alias("part"))
        run3, schema3 = _resolve_part(data, sizes, config)
        resolved = rows.groupBy("part").applyInArrow(run3, from_arrow_schema(schema3))
        out = resolved.toArrow()
        resolve_s = time.perf_counter() - started
    finally:
        first.unpersist()
        data.unpersist()
    frame = pl.from_arrow(out)
    assert isinstance(frame, pl.DataFrame)
    n = frame.height
    raw = _matrix(frame["codes"], np.int32).reshape(n, levels)
    width = levels + (1 if config.collision == "suffix" else 0)
    codes = _matrix(frame["resolved"], np.int32).reshape(n, width)
    return Assigned(
        frame["item_id"],
        raw,
        _resolution(raw, codes, sizes, config, frame["unplaced"].is_not_null().to_numpy()),
        [float(errors[f"e{level}"]) for level in range(levels)] if errors else [],
        {
            "assign_s": assigned_s,
            "resolve_s": resolve_s,
            "items_per_second_assign": n / max(assigned_s, 1e-9),
        },
    )


def _resolution(raw: np.ndarray, codes: np.ndarray, sizes: list[int], config: BuildConfig, lost) -> Resolution:
    """The build's resolution figures, from the raw and the resolved codes gathered on the driver."""
    out_sizes = [*sizes, int(codes[:, -1].max()) + 1 if len(codes) else 1] if config.collision == "suffix" else sizes
    before, largest_before = group_stats(keys(raw, sizes))
    after, largest_after = group_stats(keys(codes, out_sizes))
    moved = int((codes[:, len(sizes) - 1] != raw[:, -1]).sum())
    report = {
        "method": config.collision,
        "capacity": config.capacity,
        "items": len(raw),
        "fixed_items": 0,
        "engine": "spark",
        "collision_rate_before": before,
        "largest_group_before": largest_before,
        "collision_rate_after": after,
        "largest_group_after": largest_after,
        "items_moved": moved,
        "unplaced": int(lost.sum()),
        "unplaced_reasons": {"no free code under the prefix": int(lost.sum())} if lost.any() else {},
    }
    if config.collision == "suffix":
        report["suffix_size"] = out_sizes[-1]
    return Resolution(codes, list(out_sizes), report, np.flatnonzero(lost))

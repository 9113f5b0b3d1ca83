"""SID assignment and collision resolution on Spark, for catalogues beyond one machine.

The model's artefact bytes are broadcast. Tasks open the item_embeddings files themselves (`TableFiles`) and
encode them (`mapInArrow`, batched matrix products); no vector ever passes through Spark. The SID prefixes are
dealt into parts (prefix modulo the part count, as `resolve_by_prefix` does in process); for each part a task
finds the items that cannot keep their SID, the files holding those items are read again to compute their
candidates, and each part is then resolved in one task (`cogroup`, `applyInArrow`) by the same
`resolve_on_demand` as the in-process path. Items only move within their prefix and ties break on the item-id
hash, so both paths give every item the same SID.
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
from pyspark.sql.pandas.types import from_arrow_schema

from lake.spark import TableFiles
from sid_index.artifact import artifact_bytes, load_artifact
from sid_index.build import Assigned, BuildConfig, candidates, must_move, tiebreaks
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


def _code_fields(levels: int, prefix: str = "code") -> list[tuple[str, pa.DataType]]:
    return [(f"{prefix}_{level}", pa.int32()) for level in range(levels)]


def _item_fields(levels: int) -> list[tuple[str, pa.DataType]]:
    """What the resolution needs of each item: flat columns (no arrays), cheap for Spark to shuffle and cache."""
    return [
        ("part", pa.int64()),
        ("item_id", pa.string()),
        *_code_fields(levels),
        ("priority", pa.float32()),
        ("file_no", pa.int32()),
        ("row", pa.int64()),
    ]


def _encode_task(model_data, source: TableFiles, levels: int, parts: int):
    """The encoding pass over whole files: the part of its SID prefix, codes, distance to the own code and place
    (file number, row) of each item, and its squared error after each level."""
    schema = pa.schema([*_item_fields(levels), *[(f"error_{level}", pa.float64()) for level in range(levels)]])
    read = source.open

    def run(files: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = _model(model_data.value)
        for listing in files:
            numbers, texts = listing.column("file_no").to_pylist(), listing.column("file").to_pylist()
            for file_no, text in zip(numbers, texts, strict=True):
                row = 0
                for batch in read(text):
                    if not batch.num_rows:
                        continue
                    encoded = model.encode(vectors_of(batch), top=1)
                    codes = encoded.codes.astype(np.int32)
                    columns = [
                        pa.array(prefix_keys(codes, model.sizes) % parts),
                        batch.column("item_id").cast(pa.string()),
                        *[pa.array(codes[:, level]) for level in range(levels)],
                        pa.array(encoded.candidate_distances[:, 0].astype(np.float32)),
                        pa.array(np.full(batch.num_rows, file_no, np.int32)),
                        pa.array(np.arange(row, row + batch.num_rows, dtype=np.int64)),
                        *[pa.array(encoded.errors[:, level].astype(np.float64)) for level in range(levels)],
                    ]
                    row += batch.num_rows
                    yield pa.RecordBatch.from_arrays(columns, schema=schema)

    return run, schema


def _part(group: pa.Table, levels: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """A part's items in item-id order, their codes, distances to their own codes and tie-break hashes."""
    frame = pl.from_arrow(group)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.sort("item_id")
    codes = frame.select(name for name, _ in _code_fields(levels)).to_numpy().astype(np.int32)
    return frame, codes, frame["priority"].to_numpy(), tiebreaks(frame["item_id"])


def _movers_task(sizes: list[int], capacity: int):
    """The items of a part that cannot keep their SID (the nearer items of a SID keep it), with their place."""
    schema = pa.schema([("part", pa.int64()), ("item_id", pa.string()), ("file_no", pa.int32()), ("row", pa.int64())])

    def run(group: pa.Table) -> pa.Table:
        frame, codes, priority, tiebreak = _part(group, len(sizes))
        rows = must_move(codes, priority, tiebreak, sizes, capacity)
        return frame[rows].select(schema.names).to_arrow().cast(schema)

    return run, schema


def _candidates_task(model_data, source: TableFiles, width: int):
    """The `width` nearest last-level codes of the items that must move, from one more read of their file."""
    lists = pa.list_(pa.int32()), pa.list_(pa.float32())
    schema = pa.schema(
        [("part", pa.int64()), ("item_id", pa.string()), ("candidates", lists[0]), ("distances", lists[1])]
    )
    descriptors, read = source.descriptors, source.open

    def run(group: pa.Table) -> pa.Table:
        frame = pl.from_arrow(group)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.sort("row")
        model = _model(model_data.value)
        found, distances = candidates(model, read(descriptors[frame["file_no"][0]]), frame["row"].to_numpy(), width)
        return pa.table(
            {
                "part": frame["part"].to_arrow(),
                "item_id": frame["item_id"].to_arrow(),
                "candidates": _lists(found.astype(np.int32)),
                "distances": _lists(distances.astype(np.float32)),
            },
            schema=schema,
        )

    return run, schema


def _resolve_task(sizes: list[int], config: BuildConfig):
    """One part of the SID prefixes resolved in a task: the in-process resolution applied to the part alone,
    the candidates of the items that must move taken from the candidates pass."""
    levels, width = len(sizes), config.candidates
    out_levels = levels + (1 if config.collision == "suffix" else 0)
    schema = pa.schema(
        [
            ("item_id", pa.string()),
            *_code_fields(levels),
            *_code_fields(out_levels, "resolved"),
            ("unplaced", pa.bool_()),
        ]
    )

    def run(group: pa.Table, found: pa.Table) -> pa.Table:
        frame, codes, priority, tiebreak = _part(group, levels)
        at = np.full(frame.height, -1, dtype=np.int64)
        if found.num_rows:
            movers = pl.from_arrow(found)
            assert isinstance(movers, pl.DataFrame)
            places = frame.select("item_id").with_row_index("at")
            where = movers.select("item_id").with_row_index("mover").join(places, on="item_id")
            at[where["at"].to_numpy()] = where["mover"].to_numpy()
            carried = _matrix(movers["candidates"], np.int32), _matrix(movers["distances"], np.float32)

        def candidates_of(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if not len(rows):
                return np.zeros((0, width), np.int32), np.zeros((0, width), np.float32)
            if (at[rows] < 0).any():
                raise RuntimeError("candidates were asked for items that the candidates pass did not find")
            return carried[0][at[rows]], carried[1][at[rows]]

        args = (config.collision, config.capacity, config.seed, None, tiebreak, width)
        res = resolve_on_demand(codes, priority, candidates_of, sizes, *args)
        unplaced = np.zeros(frame.height, dtype=bool)
        unplaced[res.unplaced] = True
        columns = [
            frame["item_id"].to_arrow(),
            *[pa.array(codes[:, level]) for level in range(levels)],
            *[pa.array(res.codes[:, level].astype(np.int32)) for level in range(out_levels)],
            pa.array(unplaced),
        ]
        return pa.Table.from_arrays(columns, schema=schema)

    return run, schema


def _lists(matrix: np.ndarray) -> pa.Array:
    """An (n, width) array as a list column of its element type."""
    flat = pa.array(np.ascontiguousarray(matrix).ravel())
    return pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1]).cast(pa.list_(flat.type))


def _matrix(lists: pl.Series, dtype: type) -> np.ndarray:
    """Equal-length list values as an (n, width) array, without Python objects; (0, 1) when there are none."""
    if not len(lists):
        return np.zeros((0, 1), dtype)
    return lists.explode().to_numpy().astype(dtype, copy=False).reshape(len(lists), -1)


def assign_with_spark(model: SidModel, source: TableFiles, config: BuildConfig) -> Assigned:
    """Assign every item of the embedding files `source` (item_id, embedding) and resolve collisions on the
    cluster; the codes are gathered on the driver for the write (about 40 bytes per item)."""
    if not source.rows:
        raise ValueError("no items to assign: the embedding table has no rows for this build's model")
    spark = source.files.sparkSession
    sizes, levels = model.sizes, len(model.sizes)
    started = time.perf_counter()
    data = spark.sparkContext.broadcast(artifact_bytes(model))
    parts = max(spark.sparkContext.defaultParallelism, -(-source.rows // config.resolve_chunk_items))
    run, schema = _encode_task(data, source, levels, parts)
    # Cached once dealt into parts: both passes over a part below read it without another shuffle.
    by_part = source.files.mapInArrow(run, from_arrow_schema(schema)).repartition(parts, "part").persist()
    try:
        errors = by_part.agg(*[F.avg(f"error_{level}").alias(f"e{level}") for level in range(levels)]).first()
        assigned_s = time.perf_counter() - started
        started = time.perf_counter()
        items = by_part.select(*(name for name, _ in _item_fields(levels)))
        out = _resolved(items, data, source, sizes, config).toArrow()
        resolve_s = time.perf_counter() - started
    finally:
        by_part.unpersist()
        data.unpersist()
    frame = pl.from_arrow(out)
    assert isinstance(frame, pl.DataFrame)
    raw = frame.select(name for name, _ in _code_fields(levels)).to_numpy().astype(np.int32)
    codes = frame.select(c for c in frame.columns if c.startswith("resolved_")).to_numpy().astype(np.int32)
    return Assigned(
        frame["item_id"],
        raw,
        _resolution(raw, codes, sizes, config, frame["unplaced"].to_numpy()),
        [float(errors[f"e{level}"]) for level in range(levels)] if errors and frame.height else [],
        {
            "assign_s": assigned_s,
            "resolve_s": resolve_s,
            "items_per_second_assign": frame.height / max(assigned_s, 1e-9),
        },
    )


def _resolved(items: DataFrame, data, source: TableFiles, sizes: list[int], config: BuildConfig) -> DataFrame:
    """Every part resolved: with `knn_capacity`, the items that must move get their candidates first (from
    their files, grouped by file) and meet their part again in a cogroup."""
    run, schema = _resolve_task(sizes, config)
    if config.collision == "knn_capacity":
        find, movers_schema = _movers_task(sizes, config.capacity)
        movers = items.groupBy("part").applyInArrow(find, from_arrow_schema(movers_schema))
        compute, found_schema = _candidates_task(data, source, config.candidates)
        found = movers.groupBy("file_no").applyInArrow(compute, from_arrow_schema(found_schema))
    else:
        found_schema = pa.schema([("part", pa.int64()), ("item_id", pa.string())])
        found = items.sparkSession.createDataFrame([], from_arrow_schema(found_schema))
    return items.groupBy("part").cogroup(found.groupBy("part")).applyInArrow(run, from_arrow_schema(schema))


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

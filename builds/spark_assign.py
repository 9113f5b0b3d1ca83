"""SID assignment and collision resolution on Spark, for catalogues beyond one machine.

The model's artefact bytes are broadcast. Tasks open the item_embeddings files themselves (`TableFiles`) and
encode them (`mapInArrow`, batched matrix products); no vector ever passes through Spark. The SID prefixes are
dealt into parts (prefix modulo the part count, as `resolve_by_prefix` does in process); for each part a task
finds the items that cannot keep their SID, the files holding those items are read again to compute their
candidates, and each part is then resolved in one task (`cogroup`, `applyInArrow`) by the same
`resolve_on_demand` as the in-process path. Items only move within their prefix and ties break on the item-id
hash, so both paths give every item the same SID. The same task writes its part's `item_sids` rows as staged
Parquet through the lake's filesystem and returns the files and the part's figures; the driver commits the files
(replacing the build's partition) and never holds a row per item.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from lake import journal, storage
from lake.commit_plan import StagedWriter, recover
from lake.faults import crash_point
from lake.lake import Lake
from lake.spark import TableFiles, read_table
from sid_index.artifact import artifact_bytes, load_artifact
from sid_index.build import BuildConfig, candidates, churn_figures, must_move, tiebreaks
from sid_index.codec import code_lists, keys, prefix_keys, render_expr
from sid_index.collisions import group_stats, resolve_on_demand
from sid_index.rq import SidModel, vectors_of


@dataclass(frozen=True)
class SidsTarget:
    """Where the Spark path writes: the lake, the build whose `item_sids` partition it replaces, the rows'
    source and the run."""

    lake: Lake
    build_id: str
    source: str
    run_id: str


@dataclass
class Written:
    """What the Spark path committed: the `item_sids` version, the resolved codes' sizes and the build's figures
    (the same keys as `Assigned.metrics`)."""

    version: int
    sizes: list[int]
    figures: dict


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


PART_FIGURES = pa.schema(
    [
        ("files", pa.list_(pa.string())),
        ("rows", pa.int64()),
        ("collided_before", pa.int64()),
        ("largest_before", pa.int64()),
        ("collided_after", pa.int64()),
        ("largest_after", pa.int64()),
        ("moved", pa.int64()),
        ("unplaced", pa.int64()),
        ("used_raw", pa.list_(pa.binary())),
        ("used", pa.list_(pa.binary())),
    ]
)
"""One row per part: the staged files holding its item_sids rows and the figures the build record needs (counts,
and per level a bitmap of the codes used)."""


def _resolve_task(sizes: list[int], config: BuildConfig, target: SidsTarget, staging: str):
    """One part of the SID prefixes resolved in a task: the in-process resolution applied to the part alone,
    the candidates of the items that must move taken from the candidates pass; its rows are staged as item_sids
    Parquet and the task returns their files and the part's figures (`PART_FIGURES`)."""
    levels, width = len(sizes), config.candidates
    root, options = target.lake.root, target.lake.storage_options
    constants = {"source": target.source, "run_id": target.run_id, "build_id": target.build_id}

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
        resolved = res.codes.astype(np.int32)
        rows = pl.DataFrame(
            {"item_id": frame["item_id"], "codes_raw": code_lists(codes), "codes": code_lists(resolved)}
        ).with_columns(sid=render_expr(pl.col("codes"), res.sizes), **{k: pl.lit(v) for k, v in constants.items()})
        writer = StagedWriter(storage.filesystem(root, options)[0], "item_sids", staging)
        try:
            writer.write(rows, f"p{int(frame['part'][0])}")
        finally:
            files = writer.close()
        figures = {
            "files": [files],
            "rows": [frame.height],
            **_collided("before", keys(codes, sizes)),
            **_collided("after", keys(resolved, res.sizes)),
            "moved": [int((resolved[:, levels - 1] != codes[:, -1]).sum())],
            "unplaced": [len(res.unplaced)],
            "used_raw": [_used(codes, sizes)],
            "used": [_used(resolved, res.sizes)],
        }
        return pa.table(figures, schema=PART_FIGURES)

    return run


def _collided(when: str, sid_keys: np.ndarray) -> dict[str, list[int]]:
    """The number of items sharing their SID with another, and the largest group, as one-row columns."""
    rate, largest = group_stats(sid_keys)
    return {f"collided_{when}": [round(rate * len(sid_keys))], f"largest_{when}": [largest]}


def _used(codes: np.ndarray, sizes: list[int]) -> list[bytes]:
    """Per level, a bitmap of the codes that occur (bit c set: code c is used)."""
    out = []
    for level, size in enumerate(sizes):
        mask = np.zeros(max(size, int(codes[:, level].max()) + 1 if len(codes) else 0), dtype=bool)
        mask[codes[:, level]] = True
        out.append(np.packbits(mask, bitorder="little").tobytes())
    return out


def _utilisation(bitmaps: list[list[bytes]], sizes: list[int]) -> list[float]:
    """Share of each level's codes used by at least one item, from the parts' bitmaps."""
    shares = []
    for level, size in enumerate(sizes):
        union = np.zeros(-(-size // 8), dtype=np.uint8)
        for maps in bitmaps:
            bits = np.frombuffer(maps[level], dtype=np.uint8)
            union[: len(bits)] |= bits
        shares.append(float(np.unpackbits(union, bitorder="little")[:size].sum() / size))
    return shares


def _lists(matrix: np.ndarray) -> pa.Array:
    """An (n, width) array as a list column of its element type."""
    flat = pa.array(np.ascontiguousarray(matrix).ravel())
    return pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1]).cast(pa.list_(flat.type))


def _matrix(lists: pl.Series, dtype: type) -> np.ndarray:
    """Equal-length list values as an (n, width) array, without Python objects; (0, 1) when there are none."""
    if not len(lists):
        return np.zeros((0, 1), dtype)
    return lists.explode().to_numpy().astype(dtype, copy=False).reshape(len(lists), -1)


def assign_with_spark(model: SidModel, source: TableFiles, config: BuildConfig, target: SidsTarget) -> Written:
    """Assign every item of the embedding files `source` (item_id, embedding), resolve collisions and write the
    build's `item_sids` partition on the cluster: the driver receives one row per part and commits the files the
    tasks staged (a killed run leaves only staging, which `recover` removes)."""
    if not source.rows:
        raise ValueError("no items to assign: the embedding table has no rows for this build's model")
    spark = source.files.sparkSession
    lake, sizes, levels = target.lake, model.sizes, len(model.sizes)
    recover(lake)
    staging = f"{lake.filesystem()[1]}/_staging/item_sids/{target.run_id}"
    started = time.perf_counter()
    data = spark.sparkContext.broadcast(artifact_bytes(model))
    parts = max(spark.sparkContext.defaultParallelism, -(-source.rows // config.resolve_chunk_items))
    run, schema = _encode_task(data, source, levels, parts)
    # Cached once dealt into parts: both passes over a part below read it without another shuffle.
    by_part = source.files.mapInArrow(run, from_arrow_schema(schema)).repartition(parts, "part").persist()
    claim = journal.Claim(lake, journal.Intent(target.run_id, "item_sids", staging=[staging]))  # before any staging
    try:
        errors = by_part.agg(*[F.avg(f"error_{level}").alias(f"e{level}") for level in range(levels)]).first()
        assigned_s = time.perf_counter() - started
        started = time.perf_counter()
        items = by_part.select(*(name for name, _ in _item_fields(levels)))
        out = pl.from_arrow(_resolved(items, data, source, sizes, config, target, staging).toArrow())
        assert isinstance(out, pl.DataFrame)
        resolve_s = time.perf_counter() - started
        crash_point("sids-after-staging")
        files = out["files"].explode().drop_nulls().to_list()
        version = lake.commit_files(
            "item_sids", files, run_id=target.run_id, sources=[target.source], replace=[{"build_id": target.build_id}]
        )
    finally:
        by_part.unpersist()
        data.unpersist()
        claim.release()
    items_total = int(out["rows"].sum())
    out_sizes = _out_sizes(out["used"].to_list(), sizes, config)
    figures = {
        **_report(out, config, out_sizes, sizes),
        "utilisation_per_level": _utilisation(out["used"].to_list(), out_sizes),
        "utilisation_per_level_raw": _utilisation(out["used_raw"].to_list(), sizes),
        "reconstruction_error_per_level": [float(errors[f"e{level}"]) for level in range(levels)] if errors else [],
        "assign_s": assigned_s,
        "resolve_s": resolve_s,
        "items_per_second_assign": items_total / max(assigned_s, 1e-9),
    }
    return Written(version, out_sizes, figures)


def _out_sizes(bitmaps: list[list[bytes]], sizes: list[int], config: BuildConfig) -> list[int]:
    """The resolved codes' sizes: the codebooks', and with `suffix` one more level as wide as its largest code
    + 1 (the highest bit set in any part's bitmap of that level)."""
    if config.collision != "suffix":
        return list(sizes)
    used = [
        np.flatnonzero(np.unpackbits(np.frombuffer(maps[-1], dtype=np.uint8), bitorder="little")) for maps in bitmaps
    ]
    return [*sizes, max((int(u.max()) + 1 for u in used if len(u)), default=1)]


def _report(out: pl.DataFrame, config: BuildConfig, out_sizes: list[int], sizes: list[int]) -> dict:
    """The build's resolution figures (`Resolution.report`'s keys), summed over the parts."""
    items = int(out["rows"].sum())
    lost = int(out["unplaced"].sum())
    report = {
        "method": config.collision,
        "capacity": config.capacity,
        "items": items,
        "fixed_items": 0,
        "engine": "spark",
        "collision_rate_before": int(out["collided_before"].sum()) / items if items else 0.0,
        "largest_group_before": int(out.select(pl.col("largest_before").max()).item() or 0),
        "collision_rate_after": int(out["collided_after"].sum()) / items if items else 0.0,
        "largest_group_after": int(out.select(pl.col("largest_after").max()).item() or 0),
        "items_moved": int(out["moved"].sum()),
        "unplaced": lost,
        "unplaced_reasons": {"no free code under the prefix": lost} if lost else {},
    }
    if len(out_sizes) > len(sizes):
        report["suffix_size"] = out_sizes[-1]
    return report


def churn_with_spark(spark: SparkSession, lake: Lake, previous: str, current: str) -> dict:
    """`sid_index.build.churn` between two builds' `item_sids` rows, joined on the cluster."""

    def sids(build_id: str) -> DataFrame:
        return read_table(spark, lake, "item_sids", where={"build_id": build_id}, columns=["item_id", "sid"])

    both = sids(previous).withColumnRenamed("sid", "old").join(sids(current), "item_id")
    counted = both.agg(F.count(F.lit(1)).alias("n"), F.sum((F.col("old") != F.col("sid")).cast("long")).alias("c"))
    row = counted.first()
    assert row is not None
    return churn_figures(int(row["n"]), int(row["c"] or 0))


def _resolved(
    items: DataFrame, data, source: TableFiles, sizes: list[int], config: BuildConfig, target: SidsTarget, staging: str
) -> DataFrame:
    """Every part resolved and staged (one `PART_FIGURES` row each): with `knn_capacity`, the items that must
    move get their candidates first (from their files, grouped by file) and meet their part again in a cogroup."""
    run = _resolve_task(sizes, config, target, staging)
    if config.collision == "knn_capacity":
        find, movers_schema = _movers_task(sizes, config.capacity)
        movers = items.groupBy("part").applyInArrow(find, from_arrow_schema(movers_schema))
        compute, found_schema = _candidates_task(data, source, config.candidates)
        found = movers.groupBy("file_no").applyInArrow(compute, from_arrow_schema(found_schema))
    else:
        found_schema = pa.schema([("part", pa.int64()), ("item_id", pa.string())])
        found = items.sparkSession.createDataFrame([], from_arrow_schema(found_schema))
    return items.groupBy("part").cogroup(found.groupBy("part")).applyInArrow(run, from_arrow_schema(PART_FIGURES))

"""Drift since a published build, measured on the lake: items new to it, items whose embedding changed since
it was built, and how well its codebooks encode the new items."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from builds.artifacts import load_model
from builds.lifecycle import Drift
from builds.registry import SidBuild
from lake.frames import to_frame
from lake.lake import Lake
from lake.table_stream import BATCH_ROWS, table_batches, table_rows
from sid_index.build import sample_rows
from sid_index.drift import error_ratio
from sid_index.rq import vectors_of

Stream = Callable[[], Iterator[pa.RecordBatch]]  # a stream of (item_id, embedding) batches that can be read again


@dataclass(frozen=True)
class Embeddings:
    """item_id and embedding of every item of embedding model `model` (as of `version`), read one data file at a
    time each time it is called: memory holds a batch, never the model. `columns=("item_id",)` reads the ids
    alone (a pass that skips the vectors on disk)."""

    lake: Lake
    model: str
    batch_rows: int = BATCH_ROWS
    version: int | None = None

    def __call__(self, columns: Sequence[str] = ("item_id", "embedding")) -> Iterator[pa.RecordBatch]:
        where = {"model": self.model}
        return table_batches(
            self.lake, "item_embeddings", columns=columns, where=where, version=self.version, batch_rows=self.batch_rows
        )


def embeddings(lake: Lake, model: str, batch_rows: int = BATCH_ROWS, version: int | None = None) -> Embeddings:
    """The stream of model `model`'s embeddings (see `Embeddings`)."""
    return Embeddings(lake, model, batch_rows, version)


def item_count(lake: Lake, model: str) -> int:
    """Items of embedding model `model`, from the Delta log's statistics."""
    return table_rows(lake, "item_embeddings", {"model": model})


def fingerprint(stream: Stream) -> int:
    """The sum (mod 2**64) of every row's hash of (item_id, embedding): equal for equal contents in any order."""
    total = 0
    for batch in stream():
        part = to_frame(batch).select(pl.struct("item_id", "embedding").hash(seed=1).sum()).item()
        total = (total + int(part or 0)) % 2**64
    return total


def item_ids(stream: Embeddings, without: pl.Series | None = None) -> pl.Series:
    """The stream's item ids (less `without`), sorted: a few bytes an item, read without the vectors."""
    parts = [to_frame(batch)["item_id"] for batch in stream(("item_id",))]
    ids = pl.concat(parts) if parts else pl.Series("item_id", [], pl.String)
    if without is not None:
        ids = ids.filter(~ids.is_in(without.implode()))
    return ids.sort()


def sample_of(stream: Embeddings, rows: np.ndarray, ids: pl.Series | None = None) -> pl.DataFrame:
    """The rows at positions `rows` of the stream in item-id order (of `ids`, the sorted ids to pick among, when
    given), with bounded memory: the chosen ids are picked from a second pass over the stream."""
    ids = item_ids(stream) if ids is None else ids
    wanted = ids.gather(rows.astype(np.int64)).implode()
    parts = [to_frame(batch).filter(pl.col("item_id").is_in(wanted)) for batch in stream()]
    return pl.concat(parts).sort("item_id") if parts else pl.DataFrame(schema={"item_id": pl.String})


def changed_items(lake: Lake, stream: Embeddings, model: str, version: int | None) -> int:
    """Items of `stream` whose embedding differs from the one they had at Delta version `version`."""
    if version is None:
        return 0
    then = embeddings(lake, model, version=version)
    now, before = _digests(stream), _digests(then)
    return now.join(before, on="item_id").filter(pl.col("digest") != pl.col("digest_right")).height


def _digests(stream: Stream) -> pl.DataFrame:
    """item_id and a hash of its embedding, for every row of the stream."""
    digest = pl.col("embedding").hash(seed=1).alias("digest")
    parts = [to_frame(batch).select("item_id", digest) for batch in stream()]
    return pl.concat(parts) if parts else pl.DataFrame(schema={"item_id": pl.String, "digest": pl.UInt64})


def measure(lake: Lake, stream: Embeddings, n_items: int, build: SidBuild, size: int, seed: int) -> Drift:
    """Drift of the catalogue `stream` (item_id, embedding; `n_items` rows) since `build`; the error ratio is
    measured on a seeded sample of at most `size` new items."""
    inputs = build.inputs
    assigned = lake.scan("item_sids").filter(pl.col("build_id") == build.build_id).select("item_id").collect()
    new = item_ids(stream, without=assigned["item_id"])
    n_new = new.len()
    changed = changed_items(lake, stream, inputs.get("embedding_model", ""), inputs.get("item_embeddings_version"))
    errors = build.metrics.get("reconstruction_error_per_level") or [0.0]
    ratio = 0.0
    if n_new and inputs.get("artifact"):
        vectors = vectors_of(sample_of(stream, sample_rows(n_new, size, seed), new).to_arrow())
        ratio = error_ratio(load_model(lake, inputs["artifact"]), vectors, float(errors[-1]))
    return Drift(n_new, _share(n_new, n_items), changed, _share(changed, n_items), round(ratio, 4))


def _share(count: int, total: int) -> float:
    return round(count / total, 6) if total else 0.0


def data_through(lake: Lake) -> str | None:
    """The last day of interactions and sequences in the lake: the data a build made now covers."""
    days = [lake.scan(name).select(pl.col("ds").max()).collect().item() for name in ("interactions", "user_sequences")]
    return max((d for d in days if d), default=None)

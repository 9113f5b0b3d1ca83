"""The table catalog: every lake table declared once, with its Arrow schema, partitions and keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
CODES = pa.list_(pa.int32())


@dataclass(frozen=True)
class TableSpec:
    """A lake table: its name (also its folder under the lake root), schema, partitions and keys."""

    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...]
    keys: tuple[str, ...]
    description: str
    columns: dict[str, str]
    """What each column holds, in the schema's order (the Dagster UI shows it beside the column)."""

    @property
    def data_columns(self) -> list[str]:
        """Columns stored in the Parquet files (partition columns live in the Delta log)."""
        return [f.name for f in self.schema if f.name not in self.partition_by]


def is_day(value: str) -> bool:
    """Whether `value` is a partition day `ds`: a calendar day written YYYY-MM-DD."""
    try:
        return len(value) == 10 and dt.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


BEHAVIORS = ("pv", "click", "cart", "fav", "buy")  # the interactions' behavior values (Taobao's, with AL-GR's)


def today() -> str:
    """The current day in UTC, YYYY-MM-DD: the partition of records that carry no day of their own."""
    return dt.datetime.now(dt.UTC).date().isoformat()


def _spec(
    name: str,
    fields: list[pa.Field],
    partition_by: tuple[str, ...],
    keys: tuple[str, ...],
    description: str,
    columns: dict[str, str],
) -> TableSpec:
    if list(columns) != [f.name for f in fields]:
        raise ValueError(f"{name}: describe every column, in the schema's order")
    return TableSpec(name, pa.schema(fields), partition_by, keys, description, columns)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        _spec(
            "interactions",
            [
                pa.field("user_id", STR, nullable=False),
                pa.field("item_id", STR, nullable=False),
                pa.field("behavior", STR, nullable=False),
                pa.field("event_ts", TS, nullable=False),
                pa.field("source", STR, nullable=False),
                pa.field("run_id", STR, nullable=False),
                pa.field("ds", STR, nullable=False),
            ],
            ("ds",),
            ("user_id", "item_id", "behavior", "event_ts"),
            "one user event",
            {
                "user_id": "the user's id",
                "item_id": "the item's id",
                "behavior": "pv, click, cart, fav or buy",
                "event_ts": "when the event happened (UTC)",
                "source": "the source file the row came from (its identity for reruns)",
                "run_id": "the run that wrote the row",
                "ds": "the partition day (UTC), YYYY-MM-DD",
            },
        ),
        _spec(
            "user_sequences",
            [
                pa.field("user_id", STR, nullable=False),
                pa.field("history", pa.list_(STR), nullable=False),
                pa.field("target", pa.list_(STR), nullable=False),
                pa.field("stage", pa.int16(), nullable=False),
                pa.field("id_space", STR, nullable=False),
                pa.field("source", STR, nullable=False),
                pa.field("line", pa.int64(), nullable=False),
                pa.field("run_id", STR, nullable=False),
                pa.field("ds", STR, nullable=False),
                pa.field("split", STR, nullable=False),
            ],
            ("ds", "split"),
            ("source", "line"),
            "one training or test sample: history item ids (oldest first) and target item ids",
            {
                "user_id": "the user's id (empty in AL-GR files, which carry none)",
                "history": "the items before the target, oldest first",
                "target": "the item ids to predict",
                "stage": "AL-GR's training stage (1-3), 0 for other sources",
                "id_space": "item (plain item ids) or sid (semantic-ID tokens)",
                "source": "the source file the row came from (its identity for reruns)",
                "line": "the line of the record in its source file",
                "run_id": "the run that wrote the row",
                "ds": "the partition day (UTC), YYYY-MM-DD",
                "split": "train or test",
            },
        ),
        _spec(
            "items",
            [
                pa.field("item_id", STR, nullable=False),
                pa.field("title", STR),
                pa.field("category", STR),
                pa.field("image", pa.binary()),
                pa.field("image_uri", STR),
                pa.field("content_hash", STR, nullable=False),
                pa.field("first_seen_ds", STR),
                pa.field("source", STR, nullable=False),
                pa.field("run_id", STR, nullable=False),
            ],
            (),
            ("item_id",),
            "one item with its title, category and image",
            {
                "item_id": "the item's id",
                "title": "the item's title",
                "category": "the item's category",
                "image": "the image's bytes, when the source held them",
                "image_uri": "where the image is, when the source linked it",
                "content_hash": "a hash of title, category and image: what changed since the last embedding",
                "first_seen_ds": "the first day the item appeared in interactions",
                "source": "the source file the row came from (its identity for reruns)",
                "run_id": "the run that wrote the row",
            },
        ),
        _spec(
            "item_pairs",
            [
                pa.field("item_id", STR, nullable=False),
                pa.field("pair_item_id", STR, nullable=False),
                pa.field("weight", pa.float32(), nullable=False),
                pa.field("run_id", STR, nullable=False),
            ],
            (),
            ("item_id", "pair_item_id"),
            "one co-occurrence pair from user sequences",
            {
                "item_id": "one item of the pair",
                "pair_item_id": "an item seen next to it in a user sequence",
                "weight": "how often the two were seen together",
                "run_id": "the run that wrote the row",
            },
        ),
        _spec(
            "item_embeddings",
            [
                pa.field("item_id", STR, nullable=False),
                pa.field("modalities", STR, nullable=False),
                pa.field("embedding", pa.list_(pa.float32()), nullable=False),
                pa.field("dim", pa.int32(), nullable=False),
                pa.field("content_hash", STR),
                pa.field("source", STR, nullable=False),
                pa.field("run_id", STR, nullable=False),
                pa.field("model", STR, nullable=False),
            ],
            ("model",),
            ("item_id", "model"),
            "one item embedding for one model",
            {
                "item_id": "the item's id",
                "modalities": "what was embedded: image, text, image+text or precomputed",
                "embedding": "the vector (list<float32>; cast with list.to_array(dim))",
                "dim": "the vector's length",
                "content_hash": "the items.content_hash the vector was computed from",
                "source": "the source file the row came from (its identity for reruns)",
                "run_id": "the run that wrote the row",
                "model": "the model, its weights and fusion (random weights say so)",
            },
        ),
        _spec(
            "sid_builds",
            [
                pa.field("build_id", STR, nullable=False),
                pa.field("method", STR, nullable=False),
                pa.field("levels", pa.int16(), nullable=False),
                pa.field("sizes", CODES, nullable=False),
                pa.field("inputs", STR),
                pa.field("seed", pa.int64()),
                pa.field("status", STR, nullable=False),
                pa.field("metrics", STR),
                pa.field("created_at", TS, nullable=False),
                pa.field("run_id", STR, nullable=False),
            ],
            (),
            ("build_id",),
            "one semantic-ID build (inputs and metrics as JSON)",
            {
                "build_id": "the build's id (method and time)",
                "method": "rq-kmeans, rq-vae or imported",
                "levels": "the number of code levels",
                "sizes": "the codebook size of each level",
                "inputs": "JSON: the embedding model, item count, data day and settings the build used",
                "seed": "the training seed",
                "status": "candidate, published, rejected or retired",
                "metrics": "JSON: the gate's SID metrics, the collision report, churn and probe figures",
                "created_at": "when the build was made (UTC)",
                "run_id": "the run that wrote the row",
            },
        ),
        _spec(
            "codebooks",
            [
                pa.field("level", pa.int16(), nullable=False),
                pa.field("code", pa.int32(), nullable=False),
                pa.field("centroid", pa.list_(pa.float32()), nullable=False),
                pa.field("build_id", STR, nullable=False),
            ],
            ("build_id",),
            ("build_id", "level", "code"),
            "one codeword of one build",
            {
                "level": "the code level, from 0",
                "code": "the codeword's index in its level",
                "centroid": "the codeword's vector",
                "build_id": "the build it belongs to",
            },
        ),
        _spec(
            "item_sids",
            [
                pa.field("item_id", STR, nullable=False),
                pa.field("codes_raw", CODES, nullable=False),
                pa.field("codes", CODES, nullable=False),
                pa.field("sid", STR, nullable=False),
                pa.field("source", STR, nullable=False),
                pa.field("run_id", STR, nullable=False),
                pa.field("build_id", STR, nullable=False),
            ],
            ("build_id",),
            ("build_id", "item_id"),
            "one item's semantic ID in one build, before (codes_raw) and after collision resolution",
            {
                "item_id": "the item's id",
                "codes_raw": "the nearest codeword per level, before collision resolution",
                "codes": "the codes after collision resolution (unique per item)",
                "sid": "the codes as AL-GR tokens (C{id} per level)",
                "source": "the source file the row came from (its identity for reruns)",
                "run_id": "the run that wrote the row",
                "build_id": "the build it belongs to",
            },
        ),
        _spec(
            "published_datasets",
            [
                pa.field("dataset", STR, nullable=False),
                pa.field("version", STR, nullable=False),
                pa.field("path", STR, nullable=False),
                pa.field("manifest_sha256", STR, nullable=False),
                pa.field("build_id", STR, nullable=False),
                pa.field("inputs", STR),
                pa.field("created_at", TS, nullable=False),
                pa.field("run_id", STR, nullable=False),
            ],
            (),
            ("dataset", "version"),
            "one published training-data version",
            {
                "dataset": "the dataset's name (gr by default)",
                "version": "the version's id (a hash of its inputs and settings)",
                "path": "where its shards and manifest are, relative to the lake root",
                "manifest_sha256": "the manifest's SHA-256",
                "build_id": "the SID build its examples use",
                "inputs": "JSON: the table versions and settings it was built from",
                "created_at": "when it was published (UTC)",
                "run_id": "the run that wrote the row",
            },
        ),
        _spec(
            "quarantine",
            [
                pa.field("source_file", STR, nullable=False),
                pa.field("line", pa.int64()),
                pa.field("raw", STR),
                pa.field("reason", STR, nullable=False),
                pa.field("run_id", STR, nullable=False),
                pa.field("quarantined_at", TS, nullable=False),
                pa.field("table", STR, nullable=False),
                pa.field("ds", STR, nullable=False),
            ],
            ("table", "ds"),
            ("table", "source_file", "line"),
            "one rejected input record and why",
            {
                "source_file": "the file the record came from",
                "line": "its line in that file (none for a whole-file rejection)",
                "raw": "the record's text as read (capped)",
                "reason": "why it was rejected",
                "run_id": "the run that wrote the row",
                "quarantined_at": "when it was rejected (UTC)",
                "table": "the table it was meant for",
                "ds": "its partition day",
            },
        ),
    ]
}


def table(name: str) -> TableSpec:
    """The spec of table `name`; a clear error listing the known tables otherwise."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; the lake has: {', '.join(TABLES)}") from None


SID_BUILDS = TABLES["sid_builds"]  # read and written only through builds.registry.BuildRegistry

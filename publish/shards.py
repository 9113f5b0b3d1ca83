"""Publish training examples as Parquet shards with a manifest written last, then register the version.

Layout: `<lake>/published/<dataset>/<version>/<split>/shard-00000.parquet` and `manifest.json`. A version is
only published once its manifest exists and its `published_datasets` row is committed; a crash before
leaves shards that no reader looks at. The version id is a hash of the inputs, so rerunning the same inputs
writes the same, byte-identical shards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from lake import storage
from lake.faults import crash_point
from lake.hashing import row_hashes
from publish.examples import EXAMPLE_SCHEMA
from publish.manifest import MANIFEST
from sid_index.codec import offsets

SHARD_COLUMNS = [
    "example",
    "user_id",
    "stage",
    "split",
    "ds",
    "history",
    "history_codes",
    "history_tokens",
    "history_unknown",
    "target",
    "target_codes",
    "target_tokens",
    "target_unknown",
]


@dataclass(frozen=True)
class Published:
    """A published dataset version."""

    dataset: str
    version: str
    path: str
    manifest: dict
    manifest_sha256: str


def version_id(build_id: str, content: str, params: Mapping[str, object]) -> str:
    """Deterministic version id from the SID build, the examples' content and the publishing settings."""
    blob = json.dumps({"build": build_id, "content": content, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def token_layout(sizes: Sequence[int]) -> dict:
    """The token layout written into every manifest."""
    return {
        "levels": len(sizes),
        "sizes": list(sizes),
        "offsets": offsets(sizes),
        "vocabulary_size": int(sum(sizes)),
        "pad_token": int(sum(sizes)),
        "render": "C{token}",
    }


SHARD_SEED = 20250921  # users are dealt to a split's shards by their id's hash with this seed


def shard_counts(rows_per_split: Mapping[str, int], rows_per_shard: int) -> dict[str, int]:
    """How many shards each split gets: enough for `rows_per_shard` rows each, at least one."""
    return {split: max(1, -(-rows // rows_per_shard)) for split, rows in rows_per_split.items()}


def shard_numbers(user_ids: pl.Expr, count: pl.Expr | int) -> pl.Expr:
    """The shard of each row: its user id's hash modulo the split's shard count (all of a user in one shard)."""
    return (user_ids.hash(seed=SHARD_SEED) % count).cast(pl.Int32)


def write_shard(rows: pl.DataFrame, out: str, split: str, shard: int, options: storage.Options = None) -> dict:
    """Write one shard's rows under `out`, in a fixed order, and return its manifest entry."""
    rows = rows.sort("user_id", "example").select(SHARD_COLUMNS)
    buffer = io.BytesIO()
    rows.write_parquet(buffer, compression="zstd", row_group_size=65_536, statistics=True)
    data = buffer.getvalue()
    name = f"{split}/shard-{shard:05d}.parquet"
    storage.write_bytes(storage.join(out, name), data, options)
    return {
        "path": name,
        "split": split,
        "rows": rows.height,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def write_shards(
    examples: pl.DataFrame, out: str, rows_per_shard: int = 500_000, options: storage.Options = None
) -> list[dict]:
    """Shards per split by a hash of the user id, rows in a fixed order, written under `out` (a folder or an
    object-store prefix); returns the manifest's shard list."""
    rows = examples.group_by("split").len()
    counts = shard_counts(dict(zip(rows["split"], rows["len"], strict=True)), rows_per_shard)
    shards = []
    for split, count in sorted(counts.items()):
        part = examples.filter(pl.col("split") == split).with_columns(_shard=shard_numbers(pl.col("user_id"), count))
        for shard in range(count):
            shards.append(write_shard(part.filter(pl.col("_shard") == shard), out, split, shard, options))
    return shards


@dataclass(frozen=True)
class Contents:
    """What a version holds, computed before its shards are written (the version id depends on it): the
    examples, an order-insensitive hash of their rows and per-split counts. Parts with disjoint users add up."""

    examples: int
    digest: int
    splits: dict[str, dict]

    @classmethod
    def of(cls, examples: pl.DataFrame) -> Contents:
        """The contents of `examples` (shard rows)."""
        columns = [c for c in SHARD_COLUMNS if not c.endswith("_codes")]  # codes follow from tokens and layout
        stats = examples.group_by("split").agg(
            examples=pl.len(),
            users=pl.col("user_id").n_unique(),
            history_unknown_items=pl.col("history_unknown").sum(),
            target_unknown_items=pl.col("target_unknown").sum(),
            history_tokens=pl.col("history_tokens").list.len().sum(),
        )
        splits = {r.pop("split"): r for r in stats.iter_rows(named=True)}
        return cls(examples.height, int(row_hashes(examples, columns).sum(dtype=np.uint64)), splits)

    def __add__(self, other: Contents) -> Contents:
        splits = {k: dict(v) for k, v in self.splits.items()}
        for split, stats in other.splits.items():
            mine = splits.setdefault(split, dict.fromkeys(stats, 0))
            for key, value in stats.items():
                mine[key] += value
        return Contents(self.examples + other.examples, (self.digest + other.digest) % (1 << 64), splits)

    def split_stats(self) -> dict:
        """Examples, users, unknown-item counts and mean history tokens per split, as the manifest has them."""
        return {
            split: {
                "examples": s["examples"],
                "users": s["users"],
                "history_unknown_items": s["history_unknown_items"],
                "target_unknown_items": s["target_unknown_items"],
                "mean_history_tokens": s["history_tokens"] / s["examples"],
            }
            for split, s in sorted(self.splits.items())
        }


@dataclass(frozen=True)
class Prepared:
    """Examples ready to publish, wherever they are (a frame here, a cached Spark frame on executors): the
    shard rows' contents, the function that writes their shards under a folder, and what was left out."""

    contents: Contents
    write: Callable[[str], list[dict]]
    skipped: int  # examples without any target SID, kept out of the shards
    history_unknown: int  # items without a SID in the build, over every example
    target_unknown: int

    @classmethod
    def of_frame(cls, examples: pl.DataFrame, rows_per_shard: int, options: storage.Options = None) -> Prepared:
        """In process: the examples frame (`map_to_sids`' schema), its usable rows sharded by `write_shards`."""
        usable = examples.filter(pl.col("target_tokens").list.len() > 0)
        return cls(
            Contents.of(usable),
            lambda out: write_shards(usable, out, rows_per_shard, options),
            examples.height - usable.height,
            int(examples["history_unknown"].sum()),
            int(examples["target_unknown"].sum()),
        )


def publish(
    prepared: Prepared,
    root: str,
    dataset: str,
    build_id: str,
    sizes: Sequence[int],
    inputs: Mapping[str, object],
    params: Mapping[str, object],
    rows_per_shard: int = 500_000,
    options: storage.Options = None,
) -> Published:
    """Write the prepared examples' shards, then the manifest; returns the version (the caller registers it in
    the lake).

    The same contents give the same version; a version whose manifest exists already is returned as it is
    (an unreadable one, from a crash of an older release, is written again). The manifest is written whole
    (a temporary name renamed into place, or one object-store put), so it is whole or absent.
    """
    contents = prepared.contents
    version = version_id(
        build_id,
        f"{contents.digest}:{contents.examples}:{prepared.skipped}",
        {**params, "rows_per_shard": rows_per_shard},
    )
    out = storage.join(root, dataset, version)
    if storage.is_file(storage.join(out, MANIFEST), options):
        text = storage.read_text(storage.join(out, MANIFEST), options)
        try:
            return Published(dataset, version, out, json.loads(text), hashlib.sha256(text.encode()).hexdigest())
        except json.JSONDecodeError:
            pass
    shards = sorted(prepared.write(out), key=lambda s: s["path"])
    crash_point("publish-after-shards")
    schema = pl.DataFrame(schema=EXAMPLE_SCHEMA).select(SHARD_COLUMNS).to_arrow().schema
    manifest = {
        "format": "sidforge-gr/1",
        "dataset": dataset,
        "version": version,
        "sid_build": build_id,
        "token_layout": token_layout(sizes),
        "inputs": dict(inputs),
        "params": dict(params),
        "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
        "shards": shards,
        "splits": contents.split_stats(),
        "examples": contents.examples,
        "examples_without_target_sid": prepared.skipped,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    storage.write_text(storage.join(out, MANIFEST), text, options)
    return Published(dataset, version, out, manifest, hashlib.sha256(text.encode()).hexdigest())


def registration(published: Published, run_id: str) -> pl.DataFrame:
    """The `published_datasets` row of a version: its path relative to the lake root (`published/<dataset>/
    <version>`), so that a moved or restored lake still finds it."""
    return pl.DataFrame(
        [
            {
                "dataset": published.dataset,
                "version": published.version,
                "path": f"published/{published.dataset}/{published.version}",
                "manifest_sha256": published.manifest_sha256,
                "build_id": published.manifest["sid_build"],
                "inputs": json.dumps(published.manifest["inputs"], sort_keys=True),
                "created_at": dt.datetime.now(dt.UTC),
                "run_id": run_id,
            }
        ]
    )

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from lake import storage
from lake.faults import crash_point
from lake.hashing import row_hashes
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


def write_shards(
    examples: pl.DataFrame, out: str, rows_per_shard: int = 500_000, options: storage.Options = None
) -> list[dict]:
    """Shards per split by a hash of the user id, rows in a fixed order, written under `out` (a folder or an
    object-store prefix); returns the manifest's shard list."""
    shards = []
    for split in sorted(examples["split"].unique().to_list()):
        part = examples.filter(pl.col("split") == split)
        count = max(1, -(-part.height // rows_per_shard))
        part = part.with_columns(_shard=(pl.col("user_id").hash(seed=20250921) % count).cast(pl.Int32))
        for shard in range(count):
            rows = part.filter(pl.col("_shard") == shard).sort("user_id", "example").select(SHARD_COLUMNS)
            buffer = io.BytesIO()
            rows.write_parquet(buffer, compression="zstd", row_group_size=65_536, statistics=True)
            data = buffer.getvalue()
            name = f"{split}/shard-{shard:05d}.parquet"
            storage.write_bytes(storage.join(out, name), data, options)
            shards.append(
                {
                    "path": name,
                    "split": split,
                    "rows": rows.height,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    return shards


def examples_digest(examples: pl.DataFrame) -> str:
    """An order-insensitive hash of the shard rows (codes are implied by tokens and the layout)."""
    columns = [c for c in SHARD_COLUMNS if not c.endswith("_codes")]
    return str(int(row_hashes(examples, columns).sum(dtype=np.uint64)))


def split_stats(examples: pl.DataFrame) -> dict:
    """Examples, users and unknown-item counts per split."""
    stats = examples.group_by("split").agg(
        examples=pl.len(),
        users=pl.col("user_id").n_unique(),
        history_unknown_items=pl.col("history_unknown").sum(),
        target_unknown_items=pl.col("target_unknown").sum(),
        mean_history_tokens=pl.col("history_tokens").list.len().mean(),
    )
    return {r["split"]: {k: v for k, v in r.items() if k != "split"} for r in stats.sort("split").iter_rows(named=True)}


def publish(
    examples: pl.DataFrame,
    root: str,
    dataset: str,
    build_id: str,
    sizes: Sequence[int],
    inputs: Mapping[str, object],
    params: Mapping[str, object],
    rows_per_shard: int = 500_000,
    skipped: int = 0,
    options: storage.Options = None,
) -> Published:
    """Write shards, then the manifest; returns the version (the caller registers it in the lake).

    The same examples give the same version; a version whose manifest exists already is returned as it is
    (an unreadable one, from a crash of an older release, is written again). The manifest is written whole
    (a temporary name renamed into place, or one object-store put), so it is whole or absent.
    """
    content = examples_digest(examples)
    version = version_id(
        build_id, f"{content}:{examples.height}:{skipped}", {**params, "rows_per_shard": rows_per_shard}
    )
    out = storage.join(root, dataset, version)
    if storage.is_file(storage.join(out, MANIFEST), options):
        text = storage.read_text(storage.join(out, MANIFEST), options)
        try:
            return Published(dataset, version, out, json.loads(text), hashlib.sha256(text.encode()).hexdigest())
        except json.JSONDecodeError:
            pass
    shards = write_shards(examples, out, rows_per_shard, options)
    crash_point("publish-after-shards")
    schema = pa.schema([(f.name, f.type) for f in examples.select(SHARD_COLUMNS).to_arrow().schema])
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
        "splits": split_stats(examples),
        "examples": examples.height,
        "examples_without_target_sid": skipped,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    storage.write_text(storage.join(out, MANIFEST), text, options)
    return Published(dataset, version, out, manifest, hashlib.sha256(text.encode()).hexdigest())


def registration(published: Published, run_id: str) -> pl.DataFrame:
    """The `published_datasets` row of a version."""
    return pl.DataFrame(
        [
            {
                "dataset": published.dataset,
                "version": published.version,
                "path": published.path,
                "manifest_sha256": published.manifest_sha256,
                "build_id": published.manifest["sid_build"],
                "inputs": json.dumps(published.manifest["inputs"], sort_keys=True),
                "created_at": dt.datetime.now(dt.UTC),
                "run_id": run_id,
            }
        ]
    )

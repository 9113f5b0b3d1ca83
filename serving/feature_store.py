"""Feature-store lookups: an item's SID or embedding by build or model, point in time; SIDs back to items;
the valid SID prefixes for constrained decoding; training frames joined as of each event's time."""

from __future__ import annotations

import datetime as dt
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from builds.registry import BuildRegistry
from lake import storage
from lake.lake import Lake
from sid_index.codec import prefix_sets, token_ids, vocabulary_size

AsOf = dt.datetime | int | None


class FeatureStore:
    """Reads over the lake's Delta tables; `as_of` is a timestamp (UTC) or a Delta version."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self.registry = BuildRegistry(lake)

    def timeline(self) -> pl.DataFrame:
        """When each build became the published one, and the last data day it was built from:
        (published_at, build_id, data_through)."""
        return self.registry.timeline()

    def published_build(self, as_of: dt.datetime | None = None) -> str | None:
        """The build readers got at `as_of` (now when None)."""
        timeline = self.timeline()
        if as_of is not None:
            timeline = timeline.filter(pl.col("published_at") <= as_of)
        return timeline["build_id"][-1] if timeline.height else None

    def sids(self, item_ids: list[str], build_id: str | None = None, as_of: AsOf = None) -> pl.DataFrame:
        """item_id, build_id, sid and codes of the given items (the build published at `as_of` by default).

        A LookupError says so when no build was published by `as_of`, or `item_sids` did not exist yet.
        """
        if build_id is None:
            build_id = self.published_build(as_of if isinstance(as_of, dt.datetime) else None)
            if build_id is None:
                first = self.timeline()
                since = f"the first was published at {first['published_at'][0]}" if first.height else "none yet"
                raise LookupError(
                    f"no SID build was published {f'by {as_of}' if as_of else 'yet'} ({since}); "
                    "pass build_id= or a later as_of"
                )
        created = self._created("item_sids") if isinstance(as_of, dt.datetime) else None
        if created is not None and isinstance(as_of, dt.datetime) and as_of < created:
            raise LookupError(f"item_sids did not exist yet at {as_of} (created {created})")
        return (
            self.lake.scan("item_sids", version=as_of)
            .filter((pl.col("build_id") == build_id) & pl.col("item_id").is_in(item_ids))
            .select("item_id", "build_id", "sid", "codes")
            .sort("item_id")
            .collect()
        )

    def _created(self, name: str) -> dt.datetime | None:
        """When table `name` was created (None when it does not exist)."""
        return self.lake.history(name)["timestamp"].min()  # type: ignore[return-value]

    def embeddings(self, item_ids: list[str], model: str, as_of: AsOf = None) -> pl.DataFrame:
        """item_id, embedding and dim of the given items for `model`, as of a time or Delta version."""
        return (
            self.lake.scan("item_embeddings", version=as_of)
            .filter((pl.col("model") == model) & pl.col("item_id").is_in(item_ids))
            .select("item_id", "embedding", "dim")
            .sort("item_id")
            .collect()
        )

    def items_of(self, sids: list[str], build_id: str | None = None) -> pl.DataFrame:
        """sid → list of item ids in a build."""
        build_id = build_id or self.published_build()
        return (
            self.lake.scan("item_sids")
            .filter((pl.col("build_id") == build_id) & pl.col("sid").is_in(sids))
            .group_by("sid")
            .agg(pl.col("item_id").sort())
            .sort("sid")
            .collect()
        )

    def valid_prefixes(self, build_id: str | None = None, out: str | Path | None = None) -> dict[int, np.ndarray]:
        """Sorted token-id prefixes of every length for constrained decoding (saved as .npz when `out` is given).

        Level l holds one int64 per distinct prefix of l tokens (token ids packed in base vocabulary_size).
        """
        build_id = build_id or self.published_build()
        if build_id is None:
            raise LookupError("no SID build was published yet; pass build_id=")
        sizes = self.registry.sizes(build_id)
        vocab = vocabulary_size(sizes)
        codes = np.asarray(
            self.lake.scan("item_sids")
            .filter(pl.col("build_id") == build_id)
            .select("codes")
            .collect()["codes"]
            .to_list(),
            dtype=np.int64,
        )
        prefixes = prefix_sets(token_ids(codes, sizes), vocab)
        if out is not None:
            arrays: dict[str, Any] = {f"level_{k}": v for k, v in prefixes.items()}
            buffer = io.BytesIO()
            np.savez_compressed(buffer, vocabulary_size=np.int64(vocab), **arrays)
            storage.write_bytes(out, buffer.getvalue(), self.lake.storage_options)
        return prefixes

    def training_frame(self, events: pl.DataFrame, by: str = "data_day") -> pl.DataFrame:
        """Events (user_id, item_id, event_ts) with the SID each item had in the build chosen for its time.

        `by="data_day"`: the first published build whose data reaches the event's day (`data_through`, the last
        day of interactions and sequences it was built from), or the latest build for later events — replaying
        logs ingested after the fact. `by="published_at"`: the build that was published when the event happened
        (serving's point in time; null before the first publication). A warning counts events left without a SID.
        """
        timeline = self.timeline().sort("published_at")
        if by == "published_at":
            dated = events.sort("event_ts").join_asof(
                timeline.drop("data_through"), left_on="event_ts", right_on="published_at", strategy="backward"
            )
            dated = dated.drop("published_at")
        elif by == "data_day":
            builds = (
                timeline.filter(pl.col("data_through").is_not_null())
                .sort("data_through", "published_at")
                .unique("build_id", keep="first", maintain_order=True)
                .select("data_through", "build_id")
            )
            latest = timeline["build_id"][-1] if timeline.height else None
            dated = (
                events.with_columns(event_day=pl.col("event_ts").dt.date())
                .sort("event_day")
                .join_asof(builds, left_on="event_day", right_on="data_through", strategy="forward")
                .with_columns(pl.col("build_id").fill_null(latest))
                .drop("event_day", "data_through")
            )
        else:
            raise ValueError(f"by={by!r}: choose 'data_day' or 'published_at'")
        sids = self.lake.scan("item_sids").select("build_id", "item_id", "sid").collect()
        frame = dated.join(sids, on=["build_id", "item_id"], how="left")
        self._warn_missing(frame, by, timeline)
        return frame

    @staticmethod
    def _warn_missing(frame: pl.DataFrame, by: str, timeline: pl.DataFrame) -> None:
        no_build = frame["build_id"].null_count()
        no_sid = frame["sid"].null_count() - no_build
        if no_build and not timeline.height:
            warnings.warn(
                f"{no_build:,} of {frame.height:,} events have no SID: no SID build has been published", stacklevel=3
            )
        elif no_build:
            warnings.warn(
                f"{no_build:,} of {frame.height:,} events have no SID: no build was published by their "
                f"time (the first was published at {timeline['published_at'][0]}); by='data_day' joins "
                "logs ingested after the fact",
                stacklevel=3,
            )
        if no_sid:
            warnings.warn(
                f"{no_sid:,} of {frame.height:,} events have no SID: their items are not in their event's build",
                stacklevel=3,
            )


def is_valid_prefix(prefixes: dict[int, np.ndarray], tokens: list[int], vocabulary_size: int) -> bool:
    """Whether a partial SID (token ids) is a prefix of some item's SID."""
    if not tokens:
        return True
    key = 0
    for token in tokens:
        key = key * vocabulary_size + int(token)
    level = prefixes.get(len(tokens))
    if level is None:
        return False
    pos = np.searchsorted(level, key)
    return bool(pos < len(level) and level[pos] == key)

"""Training examples for GR models: history items → target items, mapped to one build's semantic IDs.

From `user_sequences` (AL-GR, item or SID space) or from `interactions` (per user, ordered by time, the
last `max_history` items before each event). Items without a SID in the build are counted per example
(`history_unknown`, `target_unknown`) and left out of the token sequences; examples whose targets all lack
a SID are kept out of the shards and counted, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from sid_index.codec import TOKEN, offsets

MAX_HISTORY = 100
EXAMPLE_SCHEMA = pl.Schema(
    {
        "user_id": pl.String(),
        "history": pl.List(pl.String),
        "target": pl.List(pl.String),
        "stage": pl.Int16(),
        "split": pl.String(),
        "ds": pl.String(),
        "id_space": pl.String(),
        "example": pl.String(),
        "history_codes": pl.List(pl.List(pl.Int32)),
        "history_tokens": pl.List(pl.Int32),
        "history_unknown": pl.Int32(),
        "target_codes": pl.List(pl.List(pl.Int32)),
        "target_tokens": pl.List(pl.Int32),
        "target_unknown": pl.Int32(),
    }
)


def sid_map(item_sids: pl.LazyFrame, build_id: str) -> pl.DataFrame:
    """item_id → codes in `build_id`."""
    return item_sids.filter(pl.col("build_id") == build_id).select("item_id", "codes").collect()


def from_interactions(
    interactions: pl.LazyFrame, test_days: Sequence[str] = (), max_history: int = MAX_HISTORY
) -> pl.LazyFrame:
    """One example per event after a user's first: its item is the target, the last items before it the history.

    Events are ordered per user by time (then item id); each history is a window of that order, gathered by
    index in one pass, so the work is the size of the output.
    """
    ordered = (
        interactions.select("user_id", "item_id", "event_ts", "ds").sort("user_id", "event_ts", "item_id").collect()
    )
    n = ordered.height
    first = ordered["user_id"].is_first_distinct().to_numpy()
    user_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, dtype=np.int64)
    pos = np.arange(n) - user_start
    rows = np.flatnonzero(pos > 0)
    lo = np.maximum(rows - max_history, user_start[rows])
    lengths = rows - lo
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    gather = np.repeat(lo - offsets[:-1], lengths) + np.arange(offsets[-1])
    items = ordered["item_id"].to_arrow(compat_level=pl.CompatLevel.oldest())
    history = pa.LargeListArray.from_arrays(pa.array(offsets), items.take(pa.array(gather)))
    examples = (
        ordered[rows]
        .select("user_id", "item_id", "ds")
        .with_columns(history=pl.Series("history", history), pos=pl.Series("pos", pos[rows]))
    )
    return examples.lazy().select(
        "user_id",
        "history",
        target=pl.concat_list("item_id"),
        stage=pl.lit(1, pl.Int16),
        split=pl.when(pl.col("ds").is_in(list(test_days))).then(pl.lit("test")).otherwise(pl.lit("train")),
        ds="ds",
        id_space=pl.lit("item"),
        example=pl.format("{}#{}", pl.col("user_id"), pl.col("pos")),
    )


def from_sequences(sequences: pl.LazyFrame) -> pl.LazyFrame:
    """The AL-GR samples as they are (history oldest first), with a stable example id."""
    return sequences.select(
        "user_id",
        "history",
        "target",
        "stage",
        "split",
        "ds",
        "id_space",
        example=pl.format("{}:{}", pl.col("source"), pl.col("line")),
    )


def _item_lists(frame: pl.DataFrame, column: str) -> tuple[pa.Array, np.ndarray]:
    """The flat item ids of a list column and each row's list length (null lists count as empty)."""
    lists = frame[column].to_arrow(compat_level=pl.CompatLevel.oldest())
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    return lists.flatten(), lists.value_lengths().fill_null(0).to_numpy().astype(np.int64)


def _parse_sids(text: pl.Series, sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Codes (n, L) of `C{t1}C{t2}...` strings and whether each parsed into exactly one valid token per level."""
    levels, offs = len(sizes), np.asarray(offsets(sizes), dtype=np.int64)
    tokens = text.str.extract_all(TOKEN).list.eval(pl.element().str.slice(1).cast(pl.Int64, strict=False))
    whole = (tokens.list.len() == levels) & (tokens.list.drop_nulls().list.len() == levels)
    valid = whole.fill_null(False).to_numpy()
    codes = np.full((len(text), levels), -1, dtype=np.int64)
    if valid.any():
        codes[valid] = tokens.filter(pl.Series(valid)).list.to_array(levels).to_numpy() - offs
    in_range = valid & ((codes >= 0) & (codes < np.asarray(sizes))).all(axis=1)
    return codes.astype(np.int32), in_range


def _side(
    frame: pl.DataFrame, column: str, book: np.ndarray, index: pl.DataFrame, sizes: Sequence[int]
) -> dict[str, pl.Series]:
    """Codes, token ids and unknown counts of one list column (history or target), in list order."""
    flat, lengths = _item_lists(frame, column)
    rows = np.repeat(np.arange(frame.height), lengths)
    ids = pl.Series("item_id", flat, dtype=pl.String)
    found = pl.DataFrame({"item_id": ids}).join(index, on="item_id", how="left", maintain_order="left")["_sid"]
    if len(found) != len(ids):
        raise ValueError("the SID map has an item_id more than once; item_sids keys must be unique per build")
    where = found.fill_null(-1).to_numpy(writable=True)  # row of each item in `book`, -1 when unknown
    sid_space = (frame["id_space"] == "sid").to_numpy()[rows] if len(rows) else np.zeros(0, dtype=bool)
    if sid_space.any():  # parsed SID strings become extra rows of the book
        parsed, valid = _parse_sids(ids.filter(pl.Series(sid_space)), sizes)
        where[sid_space] = np.where(valid, len(book) + np.arange(len(parsed)), -1)
        book = np.concatenate([book, parsed])
    known = where >= 0
    kept = book[where[known]]
    levels = book.shape[1]
    per_row = np.bincount(rows[known], minlength=frame.height)
    outer = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
    inner = pa.LargeListArray.from_arrays(
        pa.array(np.arange(0, kept.size + 1, levels, dtype=np.int64)), pa.array(kept.ravel())
    )
    tokens = (kept + np.asarray(offsets(sizes), dtype=np.int32)).ravel()
    return {
        f"{column}_codes": pl.Series(f"{column}_codes", pa.LargeListArray.from_arrays(pa.array(outer), inner)),
        f"{column}_tokens": pl.Series(
            f"{column}_tokens", pa.LargeListArray.from_arrays(pa.array(outer * levels), pa.array(tokens))
        ),
        f"{column}_unknown": pl.Series(f"{column}_unknown", (lengths - per_row).astype(np.int32)),
    }


def map_to_sids(examples: pl.DataFrame, sids: pl.DataFrame, sizes: Sequence[int]) -> pl.DataFrame:
    """Codes and token ids of every history and target item; unknown items counted, not tokenised.

    Items in SID space (`C{t1}C{t2}...` strings from GR data) are parsed (a string without exactly one
    in-range token per level is unknown); item ids are looked up in `sids` (`item_id`, `codes`). Vectorised:
    one join of the flat item ids, then the lists are rebuilt from their offsets, in their original order.
    """
    book = (
        sids["codes"].list.to_array(len(sizes)).to_numpy().astype(np.int32)
        if sids.height
        else np.zeros((0, len(sizes)), dtype=np.int32)
    )
    index = sids.select("item_id", _sid=pl.int_range(pl.len(), dtype=pl.Int64))
    columns = {**_side(examples, "history", book, index, sizes), **_side(examples, "target", book, index, sizes)}
    return examples.with_columns(**columns).cast(EXAMPLE_SCHEMA).select(list(EXAMPLE_SCHEMA))

"""Training examples for GR models: history items → target items, mapped to one build's semantic IDs.

From `user_sequences` (AL-GR, item or SID space) or from `interactions` (per user, ordered by time, the
last `max_history` items before each event). Items without a SID in the build are counted per example
(`history_unknown`, `target_unknown`) and left out of the token sequences; examples whose targets all lack
a SID are kept out of the shards and counted, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

TOKEN = r"C(\d+)"
MAX_HISTORY = 100


def offsets(sizes: Sequence[int]) -> list[int]:
    """Token offset of each level (running sum of the codebook sizes before it)."""
    out, total = [], 0
    for size in sizes:
        out.append(total)
        total += int(size)
    return out


def sid_map(item_sids: pl.LazyFrame, build_id: str, sizes: Sequence[int]) -> pl.LazyFrame:
    """item_id → codes and token ids (code + level offset) in `build_id`."""
    tokens = pl.concat_list([pl.col("codes").list.get(i) + off for i, off in enumerate(offsets(sizes))])
    return (item_sids.filter(pl.col("build_id") == build_id).select("item_id", "codes")
            .with_columns(tokens=tokens.cast(pl.List(pl.Int32))))


def from_interactions(interactions: pl.LazyFrame, test_days: Sequence[str] = (),
                      max_history: int = MAX_HISTORY) -> pl.LazyFrame:
    """One example per event after a user's first: its item is the target, the last items before it the history."""
    ordered = interactions.sort("user_id", "event_ts", "item_id").with_columns(
        pos=pl.int_range(pl.len()).over("user_id"))
    prior = ordered.select("user_id", "pos", "item_id").rename({"pos": "prior_pos", "item_id": "prior_item"})
    return (ordered.filter(pl.col("pos") > 0)
            .join(prior, on="user_id")
            .filter((pl.col("prior_pos") < pl.col("pos")) & (pl.col("prior_pos") >= pl.col("pos") - max_history))
            .sort("user_id", "pos", "prior_pos")
            .group_by("user_id", "pos", "ds", "item_id", maintain_order=True)
            .agg(history=pl.col("prior_item"))
            .select("user_id", "history", target=pl.concat_list("item_id"), stage=pl.lit(1, pl.Int16),
                    split=pl.when(pl.col("ds").is_in(list(test_days))).then(pl.lit("test")).otherwise(pl.lit("train")),
                    ds="ds", id_space=pl.lit("item"), example=pl.format("{}#{}", pl.col("user_id"), pl.col("pos"))))


def from_sequences(sequences: pl.LazyFrame) -> pl.LazyFrame:
    """The AL-GR samples as they are (history oldest first), with a stable example id."""
    return sequences.select("user_id", "history", "target", "stage", "split", "ds", "id_space",
                            example=pl.format("{}:{}", pl.col("source"), pl.col("line")))


def map_to_sids(examples: pl.LazyFrame, sids: pl.LazyFrame, sizes: Sequence[int]) -> pl.LazyFrame:
    """Codes and token ids of every history and target item; unknown items counted, not tokenised.

    Items in SID space (`C{t1}C{t2}...` strings from GR data) are parsed; item ids are looked up in `sids`.
    """
    offs = offsets(sizes)

    def side(column: str) -> pl.LazyFrame:
        exploded = examples.select("example", "id_space", pl.col(column).alias("item_id")).with_row_index(
            "_row").explode("item_id").with_columns(pos=pl.int_range(pl.len()).over("_row"))
        looked_up = exploded.join(sids.select("item_id", "codes", "tokens"), on="item_id", how="left")
        parsed = pl.col("item_id").str.extract_all(TOKEN).list.eval(pl.element().str.slice(1).cast(pl.Int32))
        with_tokens = looked_up.with_columns(
            tokens=pl.when(pl.col("id_space") == "sid").then(parsed).otherwise(pl.col("tokens")))
        codes_of_tokens = pl.concat_list([pl.col("tokens").list.get(i, null_on_oob=True) - off
                                          for i, off in enumerate(offs)]).cast(pl.List(pl.Int32))
        with_codes = with_tokens.with_columns(
            codes=pl.when(pl.col("id_space") == "sid").then(codes_of_tokens).otherwise(pl.col("codes")))
        return (with_codes.filter(pl.col("item_id").is_not_null()).sort("_row", "pos")
                .group_by("_row", maintain_order=True)
                .agg(pl.col("codes").drop_nulls().alias(f"{column}_codes"),
                     pl.col("tokens").drop_nulls().list.explode(keep_nulls=False, empty_as_null=False)
                     .alias(f"{column}_tokens"),
                     pl.col("tokens").is_null().sum().cast(pl.Int32).alias(f"{column}_unknown")))

    base = examples.with_row_index("_row")
    out = base.join(side("history"), on="_row", how="left").join(side("target"), on="_row", how="left")
    return out.with_columns(
        pl.col("history_codes").fill_null(pl.lit([], pl.List(pl.List(pl.Int32)))),
        pl.col("history_tokens").fill_null(pl.lit([], pl.List(pl.Int32))),
        pl.col("history_unknown").fill_null(0), pl.col("target_unknown").fill_null(0),
    ).drop("_row")

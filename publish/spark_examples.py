"""The Spark engine's examples: built and mapped to SIDs by Spark (the heavy join), as a Spark frame that
`conform_examples` turns, batch by batch on the executors, into the polars engine's examples."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lake.lake import Lake
from lake.spark import read_table
from publish.examples import EXAMPLE_SCHEMA, MAX_HISTORY
from sid_index.codec import TOKEN, offsets


def _raw_examples(spark: SparkSession, lake: Lake, source: str, test_days: Sequence[str]) -> DataFrame:
    if source == "user_sequences":
        return read_table(spark, lake, "user_sequences").select(
            "user_id",
            "history",
            "target",
            "stage",
            "split",
            "ds",
            "id_space",
            F.concat_ws(":", "source", F.col("line").cast("string")).alias("example"),
        )
    events = read_table(spark, lake, "interactions")
    order = Window.partitionBy("user_id").orderBy("event_ts", "item_id")
    prior = order.rowsBetween(-MAX_HISTORY, -1)
    ranked = events.withColumn("pos", F.row_number().over(order) - 1).withColumn(
        "history", F.collect_list("item_id").over(prior)
    )
    return ranked.filter(F.col("pos") > 0).select(
        "user_id",
        "history",
        F.array("item_id").alias("target"),
        F.lit(1).cast("smallint").alias("stage"),
        F.when(F.col("ds").isin(list(test_days)), "test").otherwise("train").alias("split"),
        "ds",
        F.lit("item").alias("id_space"),
        F.concat_ws("#", "user_id", F.col("pos").cast("string")).alias("example"),
    )


def examples_with_spark(
    spark: SparkSession, lake: Lake, source: str, build_id: str, sizes: Sequence[int], test_days: Sequence[str] = ()
) -> DataFrame:
    """The examples `map_to_sids(...)` gives on the polars engine, as a Spark frame (Spark's own types and nulls
    for empty sides: `conform_examples` makes them equal)."""
    offs = F.array(*[F.lit(o) for o in offsets(sizes)])
    sizes_ = F.array(*[F.lit(int(size)) for size in sizes])
    sids = read_table(spark, lake, "item_sids", where={"build_id": build_id}, columns=["item_id", "codes"]).select(
        "item_id", "codes", F.transform("codes", lambda c, i: c + offs[i]).alias("tokens")
    )
    examples = _raw_examples(spark, lake, source, test_days)

    def side(column: str) -> DataFrame:
        items = examples.select("example", "id_space", F.posexplode(column).alias("pos", "item_id"))
        parsed = F.transform(F.regexp_extract_all("item_id", F.lit(TOKEN), 1), lambda t: t.try_cast("bigint"))
        in_range = F.transform(parsed, lambda t, i: (t >= F.get(offs, i)) & (t < F.get(offs, i) + F.get(sizes_, i)))
        valid = (F.size(parsed) == len(sizes)) & F.forall(in_range, lambda ok: F.coalesce(ok, F.lit(False)))
        joined = items.join(sids, "item_id", "left").withColumn(
            "tokens",
            F.when(F.col("id_space") == "sid", F.when(valid, parsed.cast("array<int>"))).otherwise(F.col("tokens")),
        )
        joined = joined.withColumn(
            "codes",
            F.when(F.col("id_space") == "sid", F.transform("tokens", lambda t, i: t - offs[i])).otherwise(
                F.col("codes")
            ),
        )
        known = lambda arr: F.filter(arr, lambda x: x["tokens"].isNotNull())  # noqa: E731
        ordered = F.array_sort(F.collect_list(F.struct("pos", "codes", "tokens")))
        return (
            joined.groupBy("example")
            .agg(ordered.alias("items"))
            .select(
                "example",
                F.transform(known(F.col("items")), lambda x: x["codes"]).alias(f"{column}_codes"),
                F.flatten(F.transform(known(F.col("items")), lambda x: x["tokens"])).alias(f"{column}_tokens"),
                F.size(F.filter("items", lambda x: x["tokens"].isNull())).alias(f"{column}_unknown"),
            )
        )

    return examples.join(side("history"), "example", "left").join(side("target"), "example", "left")


def conform_examples(frame: pl.DataFrame) -> pl.DataFrame:
    """Examples from the Spark frame with the polars engine's schema: empty lists and zeros for no items."""
    return (
        frame.with_columns(
            pl.col("history_codes").fill_null([]),
            pl.col("history_tokens").fill_null([]),
            pl.col("history_unknown").fill_null(0),
            pl.col("target_unknown").fill_null(0),
            pl.col("target_codes").fill_null([]),
            pl.col("target_tokens").fill_null([]),
        )
        .select(list(EXAMPLE_SCHEMA))
        .cast(EXAMPLE_SCHEMA)
    )

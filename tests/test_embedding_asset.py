"""The item_embeddings asset: tiny OpenCLIP on tiny data, incremental reruns, models side by side."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from assets import embeddings as embedding_assets
from assets import ingest as ingest_assets
from assets.resources import EncoderResource, EngineResource, LakeResource, LandingResource, SparkResource
from lake import Lake
from tests.helpers import TINY_CONFIG


@pytest.fixture
def resources(tmp_path, tiny_raw, tiny_checkpoint):
    return {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "landing": LandingResource(root=str(tiny_raw)),
        "engine": EngineResource(),
        "spark": SparkResource(),
        "encoder": EncoderResource(
            model_name="sidforge-tiny",
            weights=str(tiny_checkpoint),
            config_file=str(TINY_CONFIG),
            device="cpu",
            batch_size=64,
            num_workers=0,
        ),
    }


def _meta(result, node):
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_embeddings_are_written_once_and_models_coexist(resources):
    instance = DagsterInstance.ephemeral()
    assert materialize(
        [ingest_assets.items, ingest_assets.precomputed_embeddings], resources=resources, instance=instance
    ).success
    first = materialize([embedding_assets.item_embeddings], resources=resources, instance=instance)
    meta = _meta(first, "item_embeddings")
    assert (meta["items"], meta["items_encoded"], meta["items_skipped"], meta["items_quarantined"]) == (300, 300, 0, 0)
    assert meta["device"] == "cpu" and meta["images_per_second"] > 0
    lake = Lake(resources["lake"].root)
    model = meta["model"]
    rows = lake.scan("item_embeddings").filter(pl.col("model") == model).collect()
    assert rows.height == 300 and set(rows["dim"]) == {64} and set(rows["modalities"]) == {"image+text"}
    vectors = np.array(rows["embedding"].to_list())
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    version = lake.version("item_embeddings")

    again = _meta(
        materialize([embedding_assets.item_embeddings], resources=resources, instance=instance), "item_embeddings"
    )
    assert again["items_encoded"] == 0 and again["result"] == "nothing new, nothing written"
    assert lake.version("item_embeddings") == version

    mean = materialize(
        [embedding_assets.item_embeddings],
        resources=resources,
        instance=instance,
        run_config={"ops": {"item_embeddings": {"config": {"fusion": "mean"}}}},
    )
    models = lake.scan("item_embeddings").group_by("model").agg(pl.len(), pl.col("dim").first()).collect()
    counts = dict(zip(models["model"], models["len"], strict=True))
    assert counts == {model: 300, _meta(mean, "item_embeddings")["model"]: 300, "algr-item-emb": 300}
    assert set(models["dim"]) == {64, 32, 512}


def test_a_changed_item_is_reencoded_alone(resources, tmp_path):
    instance = DagsterInstance.ephemeral()
    materialize([ingest_assets.items], resources=resources, instance=instance)
    materialize([embedding_assets.item_embeddings], resources=resources, instance=instance)
    lake = Lake(resources["lake"].root)
    item = lake.scan("items").head(1).collect()
    changed = item.with_columns(title=pl.lit("a brand new title"), content_hash=pl.lit("changed"))
    lake.merge("items", changed, run_id="edit")
    meta = _meta(
        materialize([embedding_assets.item_embeddings], resources=resources, instance=instance), "item_embeddings"
    )
    assert (meta["items_encoded"], meta["items_skipped"]) == (1, 299)
    row = lake.scan("item_embeddings").filter(pl.col("item_id") == item["item_id"][0]).collect()
    assert row.height == 1 and row["content_hash"][0] == "changed"


def test_alignment_asset_writes_its_own_model(resources):
    instance = DagsterInstance.ephemeral()
    assert materialize(
        [ingest_assets.user_sequences, ingest_assets.item_pairs, ingest_assets.precomputed_embeddings],
        resources=resources,
        instance=instance,
    ).success
    result = materialize(
        [embedding_assets.aligned_embeddings],
        resources=resources,
        instance=instance,
        run_config={"ops": {"aligned_embeddings": {"config": {"device": "cpu", "epochs": 10}}}},
    )
    meta = _meta(result, "aligned_embeddings")
    assert meta["model"] == "algr-item-emb+align" and meta["items"] == 300
    assert meta["pair_partner_in_top10_after"] > meta["pair_partner_in_top10_before"]
    lake = Lake(resources["lake"].root)
    assert lake.scan("item_embeddings").filter(pl.col("model") == "algr-item-emb+align").collect().height == 300
    assert Path(lake.path("_models", "algr-item-emb+align.pt")).is_file()


def test_an_item_that_keeps_failing_has_one_quarantine_record(resources):
    instance = DagsterInstance.ephemeral()
    materialize([ingest_assets.items], resources=resources, instance=instance)
    lake = Lake(resources["lake"].root)
    first, second = lake.scan("items").head(2).collect().iter_rows(named=True)
    empty = pl.DataFrame(
        [{**first, "title": None, "category": None, "image": None, "image_uri": None, "content_hash": "empty"}],
        schema=lake.scan("items").collect_schema(),
    )
    corrupt = pl.DataFrame(
        [{**second, "image": b"not a jpeg", "image_uri": None, "content_hash": "corrupt"}],
        schema=lake.scan("items").collect_schema(),
    )
    lake.merge("items", pl.concat([empty, corrupt]), run_id="edit")

    def records() -> dict[str, int]:
        rows = lake.scan("quarantine").filter(pl.col("table") == "item_embeddings").collect()
        return dict(rows.group_by("raw").len().iter_rows())

    for _ in range(2):  # the empty item has no embedding, so each run tries it again
        meta = _meta(
            materialize([embedding_assets.item_embeddings], resources=resources, instance=instance), "item_embeddings"
        )
        assert meta["items_quarantined"] == 1
        assert records() == {first["item_id"]: 1, second["item_id"]: 1}
    fixed = empty.with_columns(title=pl.lit("a title at last"), content_hash=pl.lit("fixed"))
    lake.merge("items", fixed, run_id="fix")
    meta = _meta(
        materialize([embedding_assets.item_embeddings], resources=resources, instance=instance), "item_embeddings"
    )
    assert (meta["items_encoded"], meta["items_quarantined"], meta["items_text_only"]) == (1, 0, 1)
    assert records() == {first["item_id"]: 1, second["item_id"]: 1}  # its record now says text-only
    reason = lake.scan("quarantine").filter(pl.col("raw") == first["item_id"]).collect()["reason"][0]
    assert reason.startswith("text-only embedding")


def test_chunks_commit_one_by_one_and_equal_one_pass(resources, tmp_path):
    from dagster import RunConfig

    instance = DagsterInstance.ephemeral()
    assert materialize([ingest_assets.items], resources=resources, instance=instance).success
    lake = Lake(resources["lake"].root)
    before = lake.version("item_embeddings")
    config = RunConfig(ops={"item_embeddings": embedding_assets.EmbeddingConfig(chunk_items=70)})
    chunked = materialize([embedding_assets.item_embeddings], resources=resources, instance=instance, run_config=config)
    meta = _meta(chunked, "item_embeddings")
    assert (meta["chunks"], meta["items_encoded"], meta["dim"]) == (5, 300, 64)
    assert lake.version("item_embeddings") == (before if before is not None else -1) + 5 + (before is None)
    model = meta["model"]
    rows = lake.scan("item_embeddings").filter(pl.col("model") == model).collect().sort("item_id")
    other = {**resources, "lake": LakeResource(root=str(tmp_path / "whole"))}
    assert materialize([ingest_assets.items], resources=other, instance=instance).success
    assert materialize([embedding_assets.item_embeddings], resources=other, instance=instance).success
    whole = Lake(other["lake"].root).scan("item_embeddings").filter(pl.col("model") == model).collect()
    whole = whole.sort("item_id")
    assert rows.drop("run_id", "source", "embedding").equals(whole.drop("run_id", "source", "embedding"))
    np.testing.assert_allclose(
        np.array(rows["embedding"].to_list()), np.array(whole["embedding"].to_list()), rtol=0, atol=1e-5
    )

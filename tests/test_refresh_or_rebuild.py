"""`auto` mode: the nightly job refreshes the published build until drift passes a bound, then rebuilds."""

import base64
import shutil

import numpy as np
import polars as pl
from dagster import DagsterInstance

from lake import Lake
from tests.helpers import pipeline_defs, published_build

EMB = ("algr", "item_emb", "item_emb_000.csv")


def _first_night(tmp_path, tiny_raw, tiny_checkpoint):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_raw, landing)
    job = pipeline_defs(tmp_path, landing, tiny_checkpoint).resolve_job_def("nightly_sid_rebuild")
    instance = DagsterInstance.ephemeral()
    assert job.execute_in_process(instance=instance).success
    return landing, job, instance, Lake(tmp_path / "lake")


def _codebooks(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("sid_codebooks")[0].metadata.items()}


def test_changed_embeddings_past_the_bound_trigger_a_rebuild(tmp_path, tiny_raw, tiny_checkpoint):
    landing, job, instance, lake = _first_night(tmp_path, tiny_raw, tiny_checkpoint)
    first = published_build(lake)
    path = landing.joinpath(*EMB)
    header, *rows = path.read_text().splitlines()
    features = [r.split(",", 1)[1] for r in rows]
    rotated = features[1:30] + features[:1] + features[30:]  # 30 of 300 items (10 %) swap their vectors
    path.write_text(
        "\n".join([header, *(f"{r.split(',', 1)[0]},{f}" for r, f in zip(rows, rotated, strict=True))]) + "\n"
    )
    result = job.execute_in_process(instance=instance)
    assert result.success
    meta = _codebooks(result)
    assert meta["result"].startswith("rebuild: changed items 0.1 > 0.05")
    assert published_build(lake) not in (None, first)


def test_new_items_far_from_the_codebooks_trigger_a_rebuild(tmp_path, tiny_raw, tiny_checkpoint):
    landing, job, instance, lake = _first_night(tmp_path, tiny_raw, tiny_checkpoint)
    first = published_build(lake)
    header = landing.joinpath(*EMB).read_text().splitlines()[0]
    vectors = np.random.default_rng(5).standard_normal((10, 512)).astype("<f4")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [f"far{i:03d},{base64.b64encode(v.tobytes()).decode()}" for i, v in enumerate(vectors)]
    landing.joinpath("algr", "item_emb", "item_emb_far.csv").write_text("\n".join([header, *rows]) + "\n")
    result = job.execute_in_process(instance=instance)
    assert result.success
    meta = _codebooks(result)
    assert meta["result"].startswith("rebuild: new-item error ratio")  # 10 new items: 3 %, under the share bound
    assert published_build(lake) != first
    rebuilt = lake.scan("item_sids").filter(pl.col("build_id") == published_build(lake)).collect()
    assert rebuilt.height == 310

"""The lake and the landing area on object storage (a real S3 wire implementation, the moto server): the CLI
generate and ingest and the nightly job put every table, shard, manifest, artefact, report and Data Docs page in
the bucket and nothing on local disk, and every reader works from the bucket."""

from __future__ import annotations

import io
import json

import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance

from builds.registry import BuildRegistry
from lake import Lake, storage
from pipelines.cli import main
from publish.exports import export_algr_tsv
from publish.manifest import read_manifest
from serving.feature_store import FeatureStore
from serving.reader import GRShards
from tests.helpers import pipeline_defs
from tests.object_store import objects

pytestmark = pytest.mark.slow


def test_the_pipeline_writes_everything_into_the_bucket(tmp_path, monkeypatch, tiny_checkpoint, s3_bucket):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    root, landing = f"s3://{s3_bucket}/lake", f"s3://{s3_bucket}/landing"
    assert main(["generate", "--out", landing, "--scale", "tiny"]) == 0
    assert main(["ingest", f"{landing}/events", "--format", "events", "--lake", root]) == 0
    result = pipeline_defs(tmp_path, landing, tiny_checkpoint, lake_root=root).resolve_job_def("nightly_sid_rebuild")
    assert result.execute_in_process(instance=DagsterInstance.ephemeral()).success

    lake = Lake(root)
    build = BuildRegistry(lake).published()
    assert build is not None
    dataset = lake.published_dataset()
    version = dataset.rsplit("/", 1)[-1]
    keys = set(objects(s3_bucket))
    expected = {
        f"lake/published/gr/{version}/manifest.json",
        f"lake/published/gr/{version}/train/shard-00000.parquet",
        f"lake/published/gr/{version}/test/shard-00000.parquet",
        f"lake/_artifacts/sid/{build.build_id}/model.safetensors",
        f"lake/_reports/sid/{build.build_id}/index.html",
        f"lake/_reports/sid/{build.build_id}/metrics.json",
        "lake/_reports/validations/user_sequences/latest.json",
        "lake/_reports/validations/item_sids/latest.json",
        "lake/_reports/gx/data_docs/index.html",
    }
    assert expected <= keys, sorted(expected - keys)
    assert any(k.startswith("lake/interactions/ds=2025-01-01/") for k in keys)
    assert not any(k.startswith("lake/_staging/") for k in keys), "staged files were left behind"
    assert sorted(p.name for p in work.iterdir()) == [], "something was written to the working folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd"], "something was written beside it"

    assert dataset == f"{root}/published/gr/{version}"
    assert build.inputs["artifact"] == f"{root}/_artifacts/sid/{build.build_id}/model.safetensors"
    assert build.metrics["report"] == f"{root}/_reports/sid/{build.build_id}/index.html"
    report = json.loads(storage.read_text(f"{root}/_reports/sid/{build.build_id}/metrics.json"))
    assert report["build_id"] == build.build_id and report["metrics"]["gini"] == build.metrics["gini"]

    manifest = read_manifest(dataset)
    train = GRShards(dataset, "train", shuffle=False)
    examples = [e["example"] for e in train]
    assert len(examples) == manifest["splits"]["train"]["examples"] == len(set(examples))

    store = FeatureStore(lake)
    prefixes = store.valid_prefixes(out=f"{root}/exports/prefixes.npz")
    saved = np.load(io.BytesIO(storage.read_bytes(f"{root}/exports/prefixes.npz")))
    assert np.array_equal(saved["level_3"], prefixes[3])
    assert store.sids(["100000", "3tdk01"])["build_id"].to_list() == [build.build_id] * 2

    written = export_algr_tsv(dataset, f"{root}/exports/algr")
    assert written == [f"{root}/exports/algr/test.tsv", f"{root}/exports/algr/train.tsv"]
    tsv = pl.read_csv(io.BytesIO(storage.read_bytes(written[1])), separator="\t")
    assert tsv.height == len(examples)
    assert main(["tables", "--lake", root]) == 0
    assert sorted(p.name for p in work.iterdir()) == []

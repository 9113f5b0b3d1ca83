"""The SID gate in Dagster: a good build is published with its report; a collapsed build is rejected."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from assets import ingest as ingest_assets
from assets import publish as publish_assets
from assets import quality as quality_assets
from assets import sids as sid_assets
from assets.resources import EngineResource, LakeResource, LandingResource, QualityResource, SparkResource
from lake import Lake
from pipelines.cli import main
from quality.evaluate import REQUIRED_KEYS
from quality.gate import Thresholds, evaluate
from tests.helpers import published_build


def _train(**config):
    return {"ops": {"sid_codebooks": {"config": {"device": "cpu", "iters": 10, **config}}}}


@pytest.fixture
def gate(tmp_path, tiny_raw):
    resources = {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "landing": LandingResource(root=str(tiny_raw)),
        "engine": EngineResource(),
        "spark": SparkResource(),
        "quality": QualityResource(device="cpu"),
    }
    instance = DagsterInstance.ephemeral()
    assert materialize(
        [ingest_assets.precomputed_embeddings, ingest_assets.user_sequences], resources=resources, instance=instance
    ).success
    steps = [
        sid_assets.sid_codebooks,
        sid_assets.item_sids,
        quality_assets.published_sids,
        publish_assets.gr_training_data,
        quality_assets.sid_build_quality,
        *[
            c
            for c in quality_assets.TABLE_CHECKS
            if {k.asset_key.path[-1] for k in c.check_keys} & {"sid_codebooks", "item_sids"}
        ],
    ]
    return resources, instance, steps


def test_a_good_build_is_published_with_metrics_and_report(gate, capsys):
    resources, instance, steps = gate
    result = materialize(steps, resources=resources, instance=instance, run_config=_train())
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["sid_build_quality"].passed and evaluations["item_sids_expectations"].passed
    lake = Lake(resources["lake"].root)
    build = published_build(lake)
    row = lake.scan("sid_builds").filter(pl.col("build_id") == build).collect().row(0, named=True)
    assert row["status"] == "published"
    metrics = json.loads(row["metrics"])
    assert set(REQUIRED_KEYS) <= set(metrics)
    assert metrics["embedding_hitrate_raw"] >= metrics["embedding_hitrate"] >= metrics["embedding_hitrate_random"]
    report = Path(metrics["report"])
    assert report.is_file() and report.parent == Path(lake.path("_reports", "sid", build))
    page = report.read_text()
    assert page.count("<svg") == 6 and "Lorenz curve" in page and "Embedding hitrate@30" in page
    # an independent recount of Gini and collision rate on the published item_sids
    sids = lake.scan("item_sids").filter(pl.col("build_id") == build).collect()
    counts = np.sort(sids.group_by("sid").len()["len"].to_numpy()).astype(np.float64)
    n = sids.height

    def mean_difference_gini(x):
        return np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())

    assert metrics["gini"] == pytest.approx(mean_difference_gini(counts))  # FORGE: occupied SIDs only
    padded = np.concatenate([np.zeros(n - len(counts)), counts])
    assert metrics["gini_padded_to_items"] == pytest.approx(mean_difference_gini(padded))
    raw = np.asarray(sids["codes_raw"].to_list())
    assert metrics["occupied_sids_raw"] == len(np.unique(raw, axis=0))
    assert metrics["perplexity_per_level"] == pytest.approx(
        [
            2 ** -(p * np.log2(p)).sum()
            for p in (np.unique(raw[:, i], return_counts=True)[1] / n for i in range(raw.shape[1]))
        ]
    )
    assert metrics["collision_rate"] == pytest.approx(counts[counts > 1].sum() / n)
    data = result.asset_materializations_for_node("gr_training_data")[0].metadata
    assert data["sid_build"].value == build and data["examples"].value > 0
    assert (
        data["examples"].value + data["examples_without_target_sid"].value
        == lake.scan("user_sequences").collect().height
    )
    assert main(["report", build, "--lake", lake.root]) == 0
    out = capsys.readouterr().out
    assert f"build {build}" in out and "embedding_hitrate_raw" in out and str(report) in out


def test_a_collapsed_build_is_rejected_and_not_published(gate):
    resources, instance, steps = gate
    assert materialize(steps, resources=resources, instance=instance, run_config=_train()).success
    lake = Lake(resources["lake"].root)
    published = published_build(lake)
    bad = materialize(
        steps, resources=resources, instance=instance, run_config=_train(sizes=[1, 16, 16]), raise_on_error=False
    )
    assert not bad.success
    evaluation = next(e for e in bad.get_asset_check_evaluations() if e.check_name == "sid_build_quality")
    assert not evaluation.passed
    succeeded = {e.step_key for e in bad.all_events if e.is_step_success}
    assert not {"published_sids", "gr_training_data"} & succeeded
    assert lake.scan("published_datasets").collect()["build_id"].unique().to_list() == [published]
    builds = lake.scan("sid_builds").sort("created_at").collect()
    rejected = builds.row(-1, named=True)
    assert rejected["status"] == "rejected"
    assert json.loads(rejected["metrics"])["failed_checks"] == [
        "every level's raw perplexity >= max(2.0, 0.1 x its size)"
    ]
    assert published_build(lake) == published


def test_a_level_collapsed_in_the_raw_codes_fails_even_when_resolution_spread_it():
    """The model put 96 % of items on one last-level codeword; collision resolution moved them to free codes,
    so the resolved level looks healthy. The gate reads the raw codes and fails the build."""
    from quality.evaluate import evaluate_build
    from quality.hitrate import Sessions

    rng = np.random.default_rng(0)
    n, sizes = 4000, [16, 16, 64]
    raw = np.stack(
        [rng.integers(0, 16, n), rng.integers(0, 16, n), np.where(rng.random(n) < 0.96, 0, rng.integers(0, 64, n))], 1
    )
    resolved = raw.copy()
    resolved[:, 2] = rng.integers(0, 64, n)
    books = [rng.normal(size=(s, 8)).astype(np.float32) for s in sizes]
    vectors = sum(book[raw[:, i]] for i, book in enumerate(books)).astype(np.float32)
    sessions = Sessions(np.arange(10), np.arange(11), np.arange(10, 20))
    metrics = evaluate_build(
        raw, resolved, sizes, vectors, lambda c: sum(b[c[:, i]] for i, b in enumerate(books)), sessions
    )
    assert metrics["perplexity_per_level"][2] < 1.5
    assert metrics["perplexity_per_level_resolved"][2] > 50
    checks = evaluate(metrics, Thresholds()).checks
    assert [name for name, ok in checks.items() if not ok] == [
        "every level's raw perplexity >= max(2.0, 0.1 x its size)"
    ]

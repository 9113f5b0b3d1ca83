"""Typed settings: unknown choices are refused where they are made, and resources read the environment when a
run starts, not when the definitions load."""

import pytest

from assets.resources import EngineResource, LakeResource, SparkResource
from assets.sids import SidAssignConfig, SidBuildConfig
from ingest.run import make_engine
from ingest.sources.limits import Limits
from lake.settings import DEFAULT_LAKE, setting
from sid_index.build import BuildConfig


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("method", "pq", "unknown method 'pq'; choose one of rq-kmeans, rq-vae"),
        ("backend", "annoy", "unknown backend 'annoy'; choose one of torch, faiss"),
        ("collision", "drop", "unknown collision policy 'drop'; choose one of knn_capacity, random_capacity"),
        ("rqvae_preset", "tiger", "unknown RQ-VAE preset 'tiger'; choose one of sidforge, forge"),
        ("capacity", 0, "capacity, candidates and levels must be at least 1"),
    ],
)
def test_build_settings_are_checked_when_made(field, value, message):
    with pytest.raises(ValueError, match=message):
        BuildConfig(**{field: value})


def test_dagster_config_refuses_unknown_choices():
    with pytest.raises(Exception, match="Input should be 'rq-kmeans' or 'rq-vae'"):
        SidBuildConfig(method="pq")
    with pytest.raises(Exception, match="Input should be 'auto', 'refresh' or 'rebuild'"):
        SidBuildConfig(mode="sometimes")
    with pytest.raises(Exception, match="knn_capacity"):
        SidAssignConfig(collision="drop")
    with pytest.raises(Exception, match="unknown engine 'flink'; choose one of polars, spark"):
        EngineResource(engine="flink")
    with pytest.raises(ValueError, match="unknown engine 'flink'"):
        make_engine("flink")  # type: ignore[arg-type]


def test_resources_read_the_environment_at_run_time(monkeypatch, tmp_path):
    lake, spark, engine = LakeResource(), SparkResource(), EngineResource()
    monkeypatch.delenv("SIDFORGE_LAKE", raising=False)
    monkeypatch.delenv("SIDFORGE_ENGINE", raising=False)
    assert setting("SIDFORGE_LAKE", {}) == DEFAULT_LAKE and engine.name() == "polars"
    monkeypatch.setenv("SIDFORGE_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("SIDFORGE_SPARK_MASTER", "spark://10.0.0.1:7077")
    monkeypatch.setenv("SIDFORGE_ENGINE", "spark")
    assert lake.lake().root == str(tmp_path / "lake")
    assert spark.url() == "spark://10.0.0.1:7077" and engine.name() == "spark"
    assert LakeResource(root=str(tmp_path / "other")).lake().root == str(tmp_path / "other")
    monkeypatch.setenv("SIDFORGE_ENGINE", "flink")
    with pytest.raises(ValueError, match="unknown engine 'flink'"):
        EngineResource().name()


def test_limits_from_the_environment():
    limits = Limits.from_environment(
        {"SIDFORGE_MAX_RECORD_BYTES": "4096", "SIDFORGE_IMAGE_ROOTS": "/a:/b", "SIDFORGE_FETCH_IMAGES": "1"}
    )
    assert (limits.max_record_bytes, limits.image_roots, limits.fetch_images) == (4096, ("/a", "/b"), True)
    assert Limits.from_environment({}) == Limits()
    with pytest.raises(ValueError, match=r"\$SIDFORGE_MAX_INFLATE_RATIO must be an integer, got 'lots'"):
        Limits.from_environment({"SIDFORGE_MAX_INFLATE_RATIO": "lots"})

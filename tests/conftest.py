"""Shared fixtures: tiny synthetic data (generated once per session), a fresh lake per test, one Spark session
per worker process, one moto server; and each pytest-xdist worker's share of the cores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _share_the_cores() -> None:
    """Under pytest-xdist, give each worker's torch, faiss (OpenMP) and polars kernels its share of the cores, for
    the worker and the processes it starts. Two workers each running two-thread kernels on two cores spin against
    each other: the probe and k-means tests took twice as long side by side (set before torch is imported)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
            os.environ.setdefault(name, share)


_share_the_cores()

from ingest.synthetic import generate  # noqa: E402 (after the thread settings)
from lake import Lake  # noqa: E402

# The modules that took longest (`pytest --durations=0 -n 2`), longest first: pytest-xdist hands out modules in
# collection order, so these start first and the two workers finish together instead of one waiting on the last.
LONGEST_FIRST = (
    "test_ui.py",
    "test_production_nightly.py",
    "test_spark_engine.py",
    "test_readme.py",
    "test_spark_cluster.py",
    "test_partition_values.py",
    "test_sid_assignment.py",
    "test_kmeans_empty_clusters.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest modules first (the rest keep their order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sidforge generate --scale tiny --seed 0` output, shared read-only by the tests."""
    out = tmp_path_factory.mktemp("raw")
    generate(out, "tiny", seed=0)
    return out


@pytest.fixture(scope="session")
def _spark_for_the_worker() -> Iterator[None]:
    """Stops the worker's Spark session when the test session ends."""
    yield
    from pyspark.sql import SparkSession

    if (session := SparkSession.getActiveSession()) is not None:
        session.stop()


@pytest.fixture
def spark(_spark_for_the_worker):
    """The worker's local Spark session: its JVM starts once per worker process, and again only after a test
    that switched to another master (a cluster's, or local[1]) stopped it."""
    from lake.spark import spark_session

    return spark_session("local[2]")


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """An empty lake in a temporary folder."""
    return Lake(tmp_path / "lake")


from embeddings.model import TINY_CONFIG  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights of the tiny OpenCLIP config, saved as a checkpoint file like a real one."""
    import torch

    from embeddings.model import EncoderSpec, load_encoder

    encoder = load_encoder(
        EncoderSpec("sidforge-tiny", "random", allow_random=True, device="cpu", config=str(TINY_CONFIG), seed=7)
    )
    path = tmp_path_factory.mktemp("weights") / "sidforge-tiny.pt"
    torch.save(encoder.model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the session; its endpoint URL."""
    from tests.object_store import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the moto server, with the standard AWS_* variables pointing at it; its name."""
    import uuid

    from lake.storage import s3_filesystem
    from tests.object_store import CREDENTIALS

    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    bucket = f"sidforge-{uuid.uuid4().hex[:12]}"
    s3_filesystem(create_buckets=True).create_dir(bucket)
    return bucket

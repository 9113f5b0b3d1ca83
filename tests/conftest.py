"""Shared fixtures: tiny synthetic data (generated once per session) and a fresh lake per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from ingest.synthetic import generate
from lake import Lake


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sidforge generate --scale tiny --seed 0` output, shared read-only by the tests."""
    out = tmp_path_factory.mktemp("raw")
    generate(out, "tiny", seed=0)
    return out


@pytest.fixture(scope="module")
def spark():
    """A local Spark session for the module (the JVM starts once), stopped afterwards."""
    from lake.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


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

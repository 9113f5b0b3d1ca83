"""The Dagster UI end to end: `dagster dev` on a free loopback port, the nightly job submitted through GraphQL."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient

from embeddings.model import TINY_CONFIG
from lake import Lake

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@pytest.fixture
def dagster_dev(tmp_path, tiny_raw, tiny_checkpoint):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    landing = tmp_path / "landing"
    shutil.copytree(tiny_raw, landing)
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SIDFORGE_LAKE": str(tmp_path / "lake"),
           "SIDFORGE_LANDING": str(landing), "SIDFORGE_CLIP_MODEL": "sidforge-tiny",
           "SIDFORGE_CLIP_CONFIG": str(TINY_CONFIG), "SIDFORGE_CLIP_WEIGHTS": str(tiny_checkpoint),
           "SIDFORGE_DEVICE": "cpu", "GX_ANALYTICS_ENABLED": "false"}
    log = (tmp_path / "dagster_dev.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port),
                             "-w", "workspace.yaml"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        _wait_for(f"http://127.0.0.1:{port}/server_info", 240)
        yield port, Lake(tmp_path / "lake")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_nightly_job_through_graphql(dagster_dev):
    port, lake = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution("nightly_sid_rebuild")
    deadline = time.monotonic() + 420
    status = None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    build = lake.published_build()
    assert build is not None
    assert lake.scan("published_datasets").collect()["build_id"].to_list() == [build]
    assert lake.scan("item_embeddings").collect()["model"].unique().sort().to_list()[0].startswith("algr-item-emb")

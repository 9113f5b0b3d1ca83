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


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory, tiny_raw, tiny_checkpoint):
    tmp_path = tmp_path_factory.mktemp("ui")
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


def _chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing (the test machine's own package registry)."""
    found = shutil.which("chromium")
    if not found:
        done = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True,
                              text=True, timeout=600)
        if done.returncode:
            subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True, timeout=600)
            done = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True,
                                  text=True, timeout=600)
        assert done.returncode == 0, f"could not install chromium: {done.stderr[-1000:]}"
        found = shutil.which("chromium")
    assert found
    return found


@pytest.mark.parametrize(("page", "names"), [
    ("locations/sidforge/asset-groups/ingest", ("interactions", "user_sequences", "items", "item_pairs")),
    ("locations/sidforge/asset-groups/semantic_ids/lineage", ("sid_codebooks", "item_sids", "published_sids")),
])
def test_asset_graph_pages_show_the_assets(dagster_dev, tmp_path, page, names):
    port, _ = dagster_dev
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1600,1200", "--virtual-time-budget=60000",
               "--dump-dom", f"http://127.0.0.1:{port}/{page}"]
    dom = subprocess.run(command, check=False, capture_output=True, text=True, timeout=240).stdout
    for name in names:
        assert name in dom, (page, name)

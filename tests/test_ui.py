"""The Dagster UI as a new user meets it: `sidforge demo`, then `sidforge dev` (what `make demo` and `make dev`
run) in a fresh folder with no SIDFORGE_ settings, every job launched through GraphQL, the asset, checks and
report pages opened in headless Chromium, and Ctrl-C (SIGINT to the process group) stopping it all."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance
from dagster_graphql import DagsterGraphQLClient
from PIL import Image

from lake import Lake
from tests.helpers import published_build

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
JOBS = ("ingest_catalog", "nightly_sid_rebuild", "align_embeddings", "lake_maintenance")


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


def _group(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True, check=False).stdout.split()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A demo folder and `sidforge dev` serving it on a free port: (port, folder, process)."""
    folder = tmp_path_factory.mktemp("newcomer")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDFORGE_", "DAGSTER_"))}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    demo = subprocess.run(
        [str(BIN / "sidforge"), "demo", "--scale", "tiny"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    for moving in ("sid_codebooks: RQ-KMeans: levels trained: 3/3", "gr_probe: probe: training epochs: 4/4"):
        assert moving in demo.stdout.split("nightly_sid_rebuild (")[0]  # shown while the nightly job runs
    port = _free_port()
    log = (folder / "dev.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "sidforge"), "dev", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/server_info", 240)
        yield port, folder, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _run(client: DagsterGraphQLClient, job: str, **kwargs) -> str:
    return _finished(client, client.submit_job_execution(job, **kwargs))


def _finished(client: DagsterGraphQLClient, run_id: str) -> str:
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(2)
    return "TIMEOUT"


@pytest.mark.timeout(1800)  # the demo, `sidforge dev` and five runs, each a fresh Python process
def test_every_job_launched_from_the_ui_succeeds_after_the_demo(ui):
    port, folder, _ = ui
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    lake = Lake(folder / "data" / "lake")
    day = lake.scan("interactions").select(pl.col("ds").max()).collect().item()
    together = {  # launched at once, as a person clicking both would: they write different tables
        "ingest_daily": client.submit_job_execution("ingest_daily", tags={"dagster/partition": day}),
        "ingest_catalog": client.submit_job_execution("ingest_catalog"),
    }
    statuses = {job: _finished(client, run_id) for job, run_id in together.items()}
    statuses |= {job: _run(client, job) for job in JOBS if job not in together}
    assert statuses == dict.fromkeys(["ingest_daily", *JOBS], "SUCCESS")
    build = published_build(lake)
    assert lake.scan("published_datasets").collect()["build_id"].to_list() == [build]
    assert "algr-item-emb+align" in lake.scan("item_embeddings").collect()["model"].unique().to_list()
    with DagsterInstance.from_config(str(folder / ".dagster")) as instance:
        noop = instance.get_latest_materialization_event(AssetKey("item_sids")).asset_materialization.metadata
        codebooks = instance.get_latest_materialization_event(AssetKey("sid_codebooks")).asset_materialization.metadata
    assert noop["items_assigned"].value == 0 and noop["build_id"].value == build
    assert 0 < noop["gini"].value < 1 and noop["dagster/row_count"].value == 300
    assert codebooks["embedding_model"].value == "algr-item-emb"
    assert codebooks["embedding_source"].value == "precomputed_embeddings"


def _chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing (the test machine's own package registry)."""
    found = shutil.which("chromium")
    if not found:
        done = subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True, text=True, timeout=600
        )
        if done.returncode:
            subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True, timeout=600)
            done = subprocess.run(
                ["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True, text=True, timeout=600
            )
        assert done.returncode == 0, f"could not install chromium: {done.stderr[-1000:]}"
        found = shutil.which("chromium")
    assert found
    return found


def _browse(url: str, profile: Path, *extra: str) -> str:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1600,1400",
        "--virtual-time-budget=60000",
        *extra,
        url,
    ]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=240).stdout


@pytest.mark.parametrize(
    ("page", "texts"),
    [
        ("locations/sidforge/asset-groups/ingest", ("interactions", "user_sequences", "items", "item_pairs")),
        ("locations/sidforge/asset-groups/semantic_ids/lineage", ("sid_codebooks", "item_sids", "published_sids")),
        ("assets/user_sequences", ("Row count", "history", "target", "source", "preview")),
        ("assets/interactions?view=checks", ("interactions_expectations", "quarantine_expectations")),
        ("assets/item_sids?view=checks", ("sid_build_quality", "item_sids_expectations")),
    ],
)
def test_pages_show_what_a_person_needs(ui, tmp_path, page, texts):
    port, _, _ = ui
    dom = _browse(f"http://127.0.0.1:{port}/{page}", tmp_path / "profile", "--dump-dom")
    missing = [text for text in texts if text not in dom]
    assert missing == [], (page, missing)


def test_sid_report_draws_its_charts_and_validations(ui, tmp_path):
    _, folder, _ = ui
    lake = Lake(folder / "data" / "lake")
    build = published_build(lake)
    metrics = json.loads(lake.scan("sid_builds").filter(pl.col("build_id") == build).collect()["metrics"][0])
    report = Path(metrics["report"])
    dom = _browse(report.as_uri(), tmp_path / "profile", "--dump-dom")
    for text in (
        "Lorenz curve of SID occupancy",
        "Occupancy histogram",
        "Perplexity per level (raw codes)",
        "Embedding hitrate@30",
        "Metrics across builds (1)",
        "gate: at least",
        "interactions",
        "passed",
        "GR probe: hit rate",  # the demo runs the probe, which adds its section to the report
        "random SIDs",
        f"{metrics['probe_hr_at_10']:.4f}",
    ):
        assert text in dom, text
    source = report.read_text()
    assert dom.count("<svg") >= 7 and not any(tag in source for tag in ("<script", "<link", "<img", 'src="http'))
    shot = tmp_path / "report.png"
    _browse(report.as_uri(), tmp_path / "profile", f"--screenshot={shot}")
    pixels = Image.open(shot).convert("L").resize((200, 200))
    inked = int((np.asarray(pixels) < 200).sum())
    assert inked > 2000, inked
    validation = next((folder / "data" / "lake" / "_reports" / "validations" / "interactions").glob("*.html"))
    page = _browse(validation.as_uri(), tmp_path / "profile", "--dump-dom")
    assert "Validation of" in page and "expect_column_values_to_not_be_null" in page and "__none__" not in page
    assert validation.stem.rsplit("_ds=", 1)[1] in page  # the partition day it validated


def test_ctrl_c_stops_everything(ui):
    """Every process of `sidforge dev` exits after one SIGINT (how long it takes: benchmarks/ctrl_c.py)."""
    _, _, proc = ui
    deadline = time.monotonic() + 300  # generous: a busy machine is slow, never wrong
    os.killpg(proc.pid, signal.SIGINT)
    while (proc.poll() is None or _group(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)  # poll() reaps `sidforge dev` itself; the group must empty too
    assert proc.poll() is not None and not _group(proc.pid), f"still running: {_group(proc.pid)}"

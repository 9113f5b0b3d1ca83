"""A run on another host keeps its claim alive past the stale limit; recovery takes over only a claim that has
stopped refreshing. The other host is a real process in its own UTS namespace (`unshare -u`, its own hostname)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from lake import Lake
from lake.commit_plan import recover
from lake.journal import FOLDER, STALE_ENV, Intent, pending
from pipelines.cli import main
from tests.helpers import write

ROOT = Path(__file__).resolve().parents[1]
STALE = 2.0
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare for a second hostname"
)


def _events(tmp_path: Path) -> Path:
    return write(tmp_path / "e.csv", "user_id,item_id,behavior,timestamp\n" + "u,i,pv,1735689600\nv,i,pv,1735689601\n")


def _other_host(lake: Lake, path: Path, release: Path) -> subprocess.Popen:
    """`sidforge ingest` on host "other-host", held after staging until `release` exists."""
    env = {**os.environ, STALE_ENV: str(STALE), "SIDFORGE_HOLD_AT": f"after-staging={release}"}
    command = [sys.executable, "-m", "pipelines.cli", "ingest", str(path), "--format", "events", "--lake", lake.root]
    script = "hostname other-host && exec " + " ".join(f"'{c}'" for c in command)
    return subprocess.Popen(["unshare", "-u", "sh", "-c", script], cwd=ROOT, env=env, start_new_session=True)


def _claim(lake: Lake, limit: float = 120.0) -> Intent:
    """The other host's intent, once it has staged its rows."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = [i for i in pending(lake) if i.host == "other-host"]
        if found and any(Path(s).exists() and any(Path(s).rglob("*.parquet")) for s in found[0].staging):
            return found[0]
        time.sleep(0.1)
    raise AssertionError("the other host never staged its rows")


def _refreshed_after(lake: Lake, moment: float, limit: float = 60.0) -> float:
    """Wait until the other host's claim is refreshed after `moment` (a wall-clock time); its new time."""
    deadline = time.monotonic() + limit
    journal = Path(lake.root, *FOLDER)
    while time.monotonic() < deadline:
        for path in journal.glob("*.json"):
            updated = json.loads(path.read_text())["updated"]
            if updated > moment:
                return updated
        time.sleep(0.1)
    raise AssertionError("the claim was not refreshed")


def test_a_long_run_keeps_its_claim_past_the_stale_limit(tmp_path, monkeypatch):
    monkeypatch.setenv(STALE_ENV, str(STALE))
    lake = Lake(tmp_path / "lake")
    release = tmp_path / "release"
    run = _other_host(lake, _events(tmp_path), release)
    try:
        first = _claim(lake)
        _refreshed_after(lake, first.updated + 2 * STALE)  # held for over twice the limit, and still refreshing
        assert recover(lake) == []
        assert main(["vacuum", "--lake", lake.root, "--retention-hours", "0"]) == 0
        assert any(Path(first.staging[0]).rglob("*.parquet")), "the held run's staged rows are kept"
        release.touch()
        assert run.wait(timeout=120) == 0
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert pl.read_delta(lake.uri("interactions")).height == 2
    assert pending(lake) == []


def test_a_claim_that_stops_refreshing_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setenv(STALE_ENV, str(STALE))
    lake = Lake(tmp_path / "lake")
    run = _other_host(lake, _events(tmp_path), tmp_path / "never")
    try:
        claim = _claim(lake)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    last = max(i.updated for i in pending(lake))
    deadline = time.monotonic() + 60
    while time.time() - last < STALE and time.monotonic() < deadline:
        time.sleep(0.1)
    assert recover(lake) == [claim.run_id]
    assert not any(Path(s).exists() for s in claim.staging)
    assert pending(lake) == []

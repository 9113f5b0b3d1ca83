"""A nightly run killed mid-way and restarted completes with no duplicate rows and no orphan version."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from lake import Lake
from publish.manifest import MANIFEST
from tests.helpers import published_build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def run_nightly(tmp: str, raw: str, checkpoint: str) -> None:
    """Run the nightly job in this process (the subprocess the drill kills)."""
    from tests.helpers import pipeline_defs

    job = pipeline_defs(Path(tmp), Path(raw), Path(checkpoint)).resolve_job_def("nightly_sid_rebuild")
    assert job.execute_in_process(instance=DagsterInstance.ephemeral()).success


def _start(tmp_path, tiny_raw, tiny_checkpoint) -> subprocess.Popen:
    code = (
        f"from tests.test_kill_restart import run_nightly; run_nightly({str(tmp_path)!r}, {str(tiny_raw)!r}, "
        f"{str(tiny_checkpoint)!r})"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_mid_way_then_restart(tmp_path, tiny_raw, tiny_checkpoint):
    artifacts = tmp_path / "lake" / "_artifacts" / "sid"
    proc = _start(tmp_path, tiny_raw, tiny_checkpoint)
    try:
        deadline = time.monotonic() + 900  # generous: waits for an event, however busy the machine
        while not (artifacts.exists() and any(artifacts.iterdir())):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    lake = Lake(tmp_path / "lake")
    assert published_build(lake) is None
    run_nightly(str(tmp_path), str(tiny_raw), str(tiny_checkpoint))
    builds = lake.scan("sid_builds").collect()
    assert builds.height == 1 and builds["status"].to_list() == ["published"]
    sids = lake.scan("item_sids").collect()
    assert sids.height == sids.select("build_id", "item_id").unique().height == 300
    registered = lake.scan("published_datasets").collect()
    paths = [lake.published_path(p) for p in registered["path"]]
    assert registered.height == 1 and Path(paths[0], MANIFEST).is_file()
    for folder in Path(lake.path("published", "gr")).iterdir():
        assert (folder / MANIFEST).is_file() == (str(folder) in paths)

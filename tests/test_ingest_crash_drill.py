"""kill -9 at every step of the ingest write path, then a rerun: the same tables as a clean run, no orphans."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.run import ingest
from lake import Lake
from tests.helpers import write

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["after-staging", "after-journal", "before-data-commit", "after-data-commit", "after-quarantine-commit"]
DAY1 = 1735689600


def _inputs(tmp_path: Path) -> list[Path]:
    good = "".join(f"u{i},i{i},pv,{DAY1 + i}\n" for i in range(40))
    return [
        write(tmp_path / "in" / "a.csv", "user_id,item_id,behavior,timestamp\n" + good + "bad,row\n"),
        write(tmp_path / "in" / "b.csv", f"user_id,item_id,behavior,timestamp\nv,i1,pv,oops\nv,i2,pv,{DAY1 + 7}\n"),
    ]


def _cli(lake: Path, files: list[Path], crash: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SIDFORGE_CRASH_AT": crash or ""}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "ingest", *map(str, files), "--format", "events", "--lake", str(lake)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _snapshot(lake: Lake) -> tuple[list, list]:
    data = lake.scan("interactions").drop("run_id").sort("user_id", "item_id").collect().rows()
    quarantine = (
        lake.scan("quarantine")
        .select("table", "ds", "source_file", "line", "raw", "reason")
        .sort("source_file", "line")
        .collect()
        .rows()
    )
    return data, quarantine


def _orphans(lake: Lake) -> list[str]:
    """Files on disk that no version of their table ever referenced, and anything left in staging."""
    left = []
    for name in ("interactions", "quarantine"):
        folder = Path(lake.uri(name))
        known = set()
        for log in (folder / "_delta_log").glob("*.json"):
            for line in log.read_text().splitlines():
                entry = json.loads(line)
                if "add" in entry:
                    known.add(entry["add"]["path"])
        left += [str(p) for p in folder.rglob("*.parquet") if str(p.relative_to(folder)) not in known]
    staging = Path(lake.path("_staging"))
    return left + ([str(p) for p in staging.rglob("*") if p.is_file()] if staging.exists() else [])


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[list[Path], tuple]:
    tmp = tmp_path_factory.mktemp("clean")
    files = _inputs(tmp)
    lake = Lake(tmp / "lake")
    report = ingest(lake, files, "events")
    assert (report.rows_written, report.rows_quarantined) == (41, 2)
    return files, _snapshot(lake)


@pytest.mark.parametrize("step", STEPS)
def test_killed_ingest_then_rerun_equals_a_clean_run(tmp_path, clean, step):
    files, expected = clean
    lake = Lake(tmp_path / "lake")
    killed = _cli(lake.root, files, step)
    assert killed.returncode == -9, killed.stderr
    rerun = _cli(lake.root, files, None)
    assert rerun.returncode == 0, rerun.stderr
    assert _snapshot(lake) == expected
    assert _orphans(lake) == []


def test_the_next_ingest_of_any_input_finishes_a_run_killed_between_its_commits(tmp_path, clean):
    files, expected = clean
    lake = Lake(tmp_path / "lake")
    assert _cli(lake.root, files, "after-data-commit").returncode == -9
    assert lake.scan("quarantine").collect().height == 0
    other = write(tmp_path / "other.csv", f"user_id,item_id,behavior,timestamp\nzz,i9,pv,{DAY1 + 99}\n")
    ingest(lake, [other], "events")
    data, quarantine = _snapshot(lake)
    assert quarantine == expected[1] and len(data) == len(expected[0]) + 1
    assert _orphans(lake) == []

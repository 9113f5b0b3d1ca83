"""`sidforge vacuum`: killed runs finished or cleaned, unreferenced files and unregistered versions removed."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from ingest.run import ingest
from lake import Lake
from lake.maintenance import vacuum
from pipelines.cli import main
from publish.manifest import MANIFEST
from publish.training_data import publish_training_data
from tests.helpers import write

ROOT = Path(__file__).resolve().parents[1]
DAY1 = 1735689600


def _events(tmp_path: Path, name: str, users: list[str]) -> Path:
    return write(
        tmp_path / name,
        "user_id,item_id,behavior,timestamp\n"
        + "".join(f"{u},i,pv,{DAY1 + n}\n" for n, u in enumerate(users))
        + "broken\n",
    )


def _killed(lake: Lake, path: Path, step: str) -> None:
    env = {**os.environ, "SIDFORGE_CRASH_AT": step}
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "ingest", str(path), "--format", "events", "--lake", lake.root],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_vacuum_cleans_a_killed_run_and_finishes_a_half_committed_one(tmp_path, capsys):
    lake = Lake(tmp_path / "lake")
    _killed(lake, _events(tmp_path, "a.csv", ["a", "b"]), "after-staging")
    _killed(lake, _events(tmp_path, "b.csv", ["c"]), "after-data-commit")
    staged = _files(Path(lake.path("_staging")))
    assert staged
    assert main(["vacuum", "--lake", lake.root, "--dry-run"]) == 0
    assert _files(Path(lake.path("_staging"))) == staged
    assert main(["vacuum", "--lake", lake.root]) == 0
    out = capsys.readouterr().out
    assert "finished the commits of killed run" in out
    assert _files(Path(lake.path("_staging"))) == []
    assert lake.scan("interactions").collect()["user_id"].to_list() == ["c"]
    assert lake.scan("quarantine").collect()["raw"].to_list() == ["broken"]


def test_replaced_files_go_after_the_retention_and_reads_stay_the_same(lake: Lake, tmp_path):
    path = _events(tmp_path, "a.csv", ["a", "b", "c"])
    ingest(lake, [path], "events")
    ingest(lake, [path], "events")
    before = lake.scan("interactions").sort("user_id").collect()
    on_disk = len(list(Path(lake.uri("interactions")).rglob("*.parquet")))
    kept = vacuum(lake, retention_hours=168)
    assert "interactions" not in kept.table_files
    listed = vacuum(lake, retention_hours=0, dry_run=True)
    assert len(listed.table_files["interactions"]) == on_disk - 1
    assert len(list(Path(lake.uri("interactions")).rglob("*.parquet"))) == on_disk
    vacuum(lake, retention_hours=0)
    assert len(list(Path(lake.uri("interactions")).rglob("*.parquet"))) == 1
    assert lake.scan("interactions").sort("user_id").collect().equals(before)


def test_unregistered_published_versions_go_and_a_torn_manifest_is_rewritten(tmp_path, tiny_raw):
    lake = Lake(tmp_path / "lake")
    ingest(lake, [tiny_raw / "algr" / "origin_behavior"], "algr-sequences")
    ingest(lake, [tiny_raw / "algr" / "item_sid"], "algr-item-sid")
    first = publish_training_data(lake, build_id="algr-item_sid_final", rows_per_shard=100)
    manifest = Path(first.published.path) / MANIFEST
    manifest.write_text(manifest.read_text()[:40])
    again = publish_training_data(lake, build_id="algr-item_sid_final", rows_per_shard=100)
    assert json.loads(manifest.read_text())["version"] == again.published.version == first.published.version
    orphan = write(Path(lake.path("published", "gr", "0123456789abcdef", "train", "shard-00000.parquet")), b"x")
    old = time.time() - 200 * 3600
    os.utime(orphan, (old, old))
    assert vacuum(lake, retention_hours=168).published_versions == [str(orphan.parents[1])]
    assert not orphan.parents[1].exists() and manifest.is_file()
    assert lake.scan("published_datasets").select(pl.len()).collect().item() == 1


def test_a_moved_lake_keeps_its_published_versions_through_vacuum(tmp_path, tiny_raw):
    from serving.reader import GRShards

    lake = Lake(tmp_path / "before" / "lake")
    ingest(lake, [tiny_raw / "algr" / "origin_behavior"], "algr-sequences")
    ingest(lake, [tiny_raw / "algr" / "item_sid"], "algr-item-sid")
    published = publish_training_data(lake, build_id="algr-item_sid_final", rows_per_shard=100).published
    old_style = (
        lake.scan("published_datasets")
        .collect()
        .with_columns(version=pl.lit("0000000000000000"), path=pl.lit(lake.path("published", "gr", "0000000000000000")))
    )
    lake.merge("published_datasets", old_style, run_id="before-relative-paths")  # how versions were registered
    (Path(lake.path("published", "gr")) / published.version).rename(Path(lake.path("published", "gr", "0" * 16)))
    publish_training_data(lake, build_id="algr-item_sid_final", rows_per_shard=100)
    examples = sum(1 for _ in GRShards(lake.published_dataset(), "train"))
    moved = tmp_path / "after" / "lake"
    moved.parent.mkdir()
    Path(lake.root).rename(moved)
    old = time.time() - 400 * 3600
    for path in moved.rglob("*"):
        os.utime(path, (old, old))
    lake = Lake(moved)
    assert main(["vacuum", "--lake", str(moved)]) == 0
    versions = sorted(p.name for p in (moved / "published" / "gr").iterdir())
    assert versions == sorted(["0" * 16, published.version])
    assert lake.published_dataset().startswith(str(moved))
    assert sum(1 for _ in GRShards(lake.published_dataset(), "train")) == examples
    for path in lake.scan("published_datasets").collect()["path"]:
        assert sum(1 for _ in GRShards(lake.published_path(path), "train")) == examples

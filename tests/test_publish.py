"""Publishing: shards and manifest, manifest last, determinism, unknown items counted, AL-GR round trip."""

import csv
from pathlib import Path

import polars as pl
import pytest

from ingest.run import ingest
from lake import Lake
from publish.exports import export_algr_tsv
from publish.manifest import read_manifest, sha256_of
from publish.shards import write_shards
from publish.training_data import publish_training_data
from serving.reader import GRShards
from tests.helpers import write

BUILD = "algr-item_sid_final"


def _lake(root: Path, raw: Path) -> Lake:
    lake = Lake(root)
    ingest(lake, [raw / "algr" / "origin_behavior"], "algr-sequences", run_id="r1")
    ingest(lake, [raw / "algr" / "train_data"], "algr-gr-tsv", run_id="r2")
    ingest(lake, [raw / "algr" / "item_sid"], "algr-item-sid", run_id="r3")
    return lake


@pytest.fixture(scope="module")
def published(tmp_path_factory, tiny_raw):
    lake = _lake(tmp_path_factory.mktemp("lake"), tiny_raw)
    return lake, publish_training_data(lake, build_id=BUILD, rows_per_shard=100)


def test_manifest_describes_the_shards(published):
    lake, report = published
    manifest = read_manifest(report.published.path)
    assert manifest["examples"] == report.examples == lake.scan("user_sequences").collect().height
    assert sum(s["rows"] for s in manifest["shards"]) == report.examples
    assert len(manifest["shards"]) >= 4
    for shard in manifest["shards"]:
        file = Path(report.published.path) / shard["path"]
        assert sha256_of(file) == shard["sha256"] and file.stat().st_size == shard["bytes"]
        assert pl.read_parquet(file).height == shard["rows"]
    assert manifest["token_layout"] == {
        "levels": 3,
        "sizes": [8192] * 3,
        "offsets": [0, 8192, 16384],
        "vocabulary_size": 24576,
        "pad_token": 24576,
        "render": "C{token}",
    }
    assert set(manifest["splits"]) == {"train", "test"}
    assert manifest["inputs"]["user_sequences"] == lake.version("user_sequences")
    row = lake.scan("published_datasets").collect().row(0, named=True)
    assert (row["version"], row["build_id"], row["path"]) == (
        manifest["version"],
        BUILD,
        f"published/gr/{row['version']}",
    )
    assert lake.published_path(row["path"]) == report.published.path
    shard = pl.read_parquet(Path(report.published.path) / manifest["shards"][0]["path"])
    first = shard.row(0, named=True)
    assert len(first["history_tokens"]) == 3 * len(first["history_codes"])
    assert all(t >= 8192 for t in first["history_tokens"][1::3])


def test_same_inputs_give_byte_identical_shards(published, tmp_path, tiny_raw):
    _, first = published
    again = publish_training_data(_lake(tmp_path / "lake", tiny_raw), build_id=BUILD, rows_per_shard=100)
    assert again.published.version == first.published.version
    assert [s["sha256"] for s in again.published.manifest["shards"]] == [
        s["sha256"] for s in first.published.manifest["shards"]
    ]


def test_a_crash_before_the_manifest_publishes_nothing(published, tmp_path):
    lake, report = published
    shards = pl.read_parquet(Path(report.published.path) / report.published.manifest["shards"][0]["path"])
    write_shards(shards, tmp_path / "half")
    with pytest.raises(FileNotFoundError, match=r"no manifest\.json"):
        GRShards(tmp_path / "half")
    with pytest.raises(FileNotFoundError, match=r"no manifest\.json"):
        read_manifest(tmp_path / "half")
    assert [lake.published_path(p) for p in lake.scan("published_datasets").collect()["path"]] == [
        report.published.path
    ]


def test_items_without_a_sid_are_counted(tmp_path, tiny_raw):
    lake = Lake(tmp_path / "lake")
    ingest(lake, [tiny_raw / "algr" / "origin_behavior" / "s1.csv"], "algr-sequences")
    all_sids = (tiny_raw / "algr" / "item_sid" / "item_sid_final.csv").read_text().splitlines()
    partial = write(tmp_path / "half_sid.csv", "\n".join(all_sids[: len(all_sids) // 2]) + "\n")
    ingest(lake, [partial], "algr-item-sid", build_id="half")
    report = publish_training_data(lake, build_id="half")
    rows = lake.scan("user_sequences").collect()
    known = set(pl.read_csv(partial)["base62_string"])
    history_unknown = sum(sum(h not in known for h in hist) for hist in rows["history"])
    no_target = sum(all(t not in known for t in target) for target in rows["target"])
    assert report.history_unknown_items == history_unknown > 0
    assert report.skipped_without_target_sid == no_target
    assert report.examples + report.skipped_without_target_sid == rows.height
    assert read_manifest(report.published.path)["examples_without_target_sid"] == no_target


def test_algr_gr_files_round_trip_to_the_same_token_strings(published, tmp_path, tiny_raw):
    _, report = published
    export_algr_tsv(report.published.path, tmp_path / "out")
    exported = {}
    for split in ("train", "test"):
        with (tmp_path / "out" / f"{split}.tsv").open() as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                exported[row["id"]] = (row["user"], row["answer"])
    checked = 0
    for path in sorted((tiny_raw / "algr" / "train_data").glob("*.tsv")):
        with path.open() as fh:
            for line, row in enumerate(csv.DictReader(fh, delimiter="\t"), start=2):
                assert exported[f"{path.name}:{line}"] == (row["user"], row["answer"])
                checked += 1
    assert checked > 100

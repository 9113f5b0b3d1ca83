"""Exports in AL-GR's token layout: a 3 x 64 build reads correctly in FORGE's `calc_hr.py`, whatever the sizes."""

import csv
import json
import re
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from assets import ingest as ingest_assets
from assets import sids as sid_assets
from assets.resources import EngineResource, LakeResource, LandingResource, SparkResource
from lake import Lake
from pipelines.cli import main
from publish.training_data import publish_training_data

TOKEN = re.compile(r"C(\d+)")


@pytest.fixture(scope="module")
def small_build(tmp_path_factory, tiny_raw):
    root = tmp_path_factory.mktemp("layout")
    resources = {
        "lake": LakeResource(root=str(root / "lake")),
        "landing": LandingResource(root=str(tiny_raw)),
        "engine": EngineResource(),
        "spark": SparkResource(),
    }
    instance = DagsterInstance.ephemeral()
    assert materialize(
        [ingest_assets.precomputed_embeddings, ingest_assets.user_sequences], resources=resources, instance=instance
    ).success
    config = {"ops": {"sid_codebooks": {"config": {"device": "cpu", "iters": 5, "sizes": [64, 64, 64]}}}}
    result = materialize(
        [sid_assets.sid_codebooks, sid_assets.item_sids], resources=resources, instance=instance, run_config=config
    )
    build = result.asset_materializations_for_node("sid_codebooks")[0].metadata["build_id"].value
    lake = Lake(resources["lake"].root)
    publish_training_data(lake, build_id=build, rows_per_shard=200)
    return lake, build, root


def _forge_sid_to_items(item_sid_csv):
    """FORGE's calc_hr.convert_csv_to_map: columns read positionally, levels offset by 8192."""
    out: dict[str, list[str]] = {}
    with open(item_sid_csv) as fh:
        for item, c1, c2, c3 in list(csv.reader(fh))[1:]:
            out.setdefault(f"C{int(c1)}C{int(c2) + 8192}C{int(c3) + 8192 * 2}", []).append(item)
    return out


def test_a_3x64_tsv_uses_algr_ranges_and_every_answer_finds_its_item_in_forges_reader(small_build, capsys):
    lake, build, root = small_build
    out = root / "export"
    assert main(["export", "--format", "algr-tsv", "--build", build, "--out", str(out), "--lake", lake.root]) == 0
    assert main(["export", "--format", "item-sid-csv", "--build", build, "--out", str(out), "--lake", lake.root]) == 0
    assert "C{code + level * 8192}" in capsys.readouterr().out
    sid_to_items = _forge_sid_to_items(out / f"item_sid_{build}.csv")
    version = Path(lake.published_dataset())
    shards = pl.read_parquet(sorted(version.glob("**/*.parquet")))
    target_of = dict(zip(shards["example"], shards["target"].list.first(), strict=True))
    found = 0
    for split in ("train", "test"):
        rows = list(csv.DictReader((out / f"{split}.tsv").open(), delimiter="\t"))
        assert rows
        for row in rows:
            for text in (row["user"], row["answer"]):
                tokens = [int(t) for t in TOKEN.findall(text)]
                assert len(tokens) % 3 == 0
                for position, token in enumerate(tokens):
                    level = position % 3
                    assert level * 8192 <= token < level * 8192 + 64, (row["id"], text)
            first_sid = "".join(f"C{t}" for t in TOKEN.findall(row["answer"])[:3])
            assert target_of[row["id"]] in sid_to_items[first_sid]
            found += 1
    assert found == shards.height
    manifest = json.loads((out / "algr-tsv.manifest.json").read_text())
    assert manifest["token_layout"] == {
        "layout": "algr",
        "stride": 8192,
        "levels": 3,
        "sizes": [64, 64, 64],
        "token": "C{code + level * stride}",
        "token_ranges": [[0, 63], [8192, 8255], [16384, 16447]],
    }
    assert manifest["build_id"] == build


def test_sid_items_keys_are_forges_sids(small_build):
    lake, build, root = small_build
    out = root / "sid-items"
    assert main(["export", "--format", "sid-items", "--build", build, "--out", str(out), "--lake", lake.root]) == 0
    assert main(["export", "--format", "item-sid-csv", "--build", build, "--out", str(out), "--lake", lake.root]) == 0
    with (out / f"sid_items_{build}.csv").open() as fh:
        ours = {r["sid"]: sorted(r["items"].split(";")) for r in csv.DictReader(fh)}
    assert ours == {k: sorted(v) for k, v in _forge_sid_to_items(out / f"item_sid_{build}.csv").items()}


def test_an_explicit_stride_and_a_level_larger_than_the_stride(small_build, capsys):
    lake, build, root = small_build
    out = root / "stride"
    assert (
        main(
            [
                "export",
                "--format",
                "algr-tsv",
                "--build",
                build,
                "--out",
                str(out),
                "--lake",
                lake.root,
                "--token-stride",
                "64",
            ]
        )
        == 0
    )
    tokens = [int(t) for t in TOKEN.findall((out / "train.tsv").read_text())]
    assert max(tokens) < 3 * 64
    assert json.loads((out / "algr-tsv.manifest.json").read_text())["token_layout"]["layout"] == "custom-stride"
    assert (
        main(
            [
                "export",
                "--format",
                "algr-tsv",
                "--build",
                build,
                "--out",
                str(root / "refused"),
                "--lake",
                lake.root,
                "--token-stride",
                "32",
            ]
        )
        != 0
    )
    err = capsys.readouterr().err
    assert "level 1 has 64 codes" in err and "--token-stride" in err
    assert not (root / "refused" / "train.tsv").exists()

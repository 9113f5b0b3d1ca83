"""Landing files on object storage (a real S3 wire implementation, the moto server): `sidforge generate --out
s3://...` puts the landing area in the bucket, every input format ingests from there exactly as from a local
copy (item images read from the bucket, never from outside the items file's prefix), a rerun replaces what it
wrote, the landing sensor lists the bucket's days, and nothing is written to local disk."""

from __future__ import annotations

import polars as pl
import pytest
from dagster import DagsterInstance, build_sensor_context

from assets.partitions import add_days
from assets.resources import LandingResource
from ingest.run import ingest
from ingest.synthetic import generate
from lake import Lake, storage
from pipelines.cli import main
from pipelines.sensors import landing_sensor
from tests.object_store import objects

pytestmark = pytest.mark.slow
INPUTS = [
    ("events", "events"),
    ("items", "items"),
    ("algr/origin_behavior", "algr-sequences"),
    ("algr/train_data", "algr-gr-tsv"),
    ("algr/item_emb", "algr-item-emb"),
    ("algr/item_sid", "algr-item-sid"),
    ("algr/item_embeddings.npz", "npz"),
]
TABLES = ("interactions", "items", "user_sequences", "item_embeddings", "item_sids", "quarantine")


def _contents(lake: Lake, name: str) -> pl.DataFrame:
    frame = lake.scan(name).drop("run_id").collect()
    if name == "quarantine":  # where the landing file lay differs; what was quarantined must not
        frame = frame.with_columns(pl.col("source_file").str.split("/").list.slice(-2).list.join("/"))
    if name == "items":
        frame = frame.with_columns(pl.col("image_uri").str.split("/").list.slice(-2).list.join("/"))
    return frame.sort([c for c, kind in frame.schema.items() if not isinstance(kind, (pl.List, pl.Array))])


def test_every_format_ingests_from_the_bucket_as_from_a_local_copy(tmp_path, monkeypatch, tiny_raw, s3_bucket):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    landing = f"s3://{s3_bucket}/landing"
    assert main(["generate", "--out", landing, "--scale", "tiny", "--seed", "0"]) == 0
    local_files = sorted(f"landing/{p.relative_to(tiny_raw).as_posix()}" for p in tiny_raw.rglob("*") if p.is_file())
    assert objects(s3_bucket) == local_files
    lakes = {"bucket": Lake(tmp_path / "from-bucket"), "disk": Lake(tmp_path / "from-disk")}
    for folder, fmt in INPUTS:
        assert main(["ingest", f"{landing}/{folder}", "--format", fmt, "--lake", str(lakes["bucket"].root)]) == 0
        assert main(["ingest", str(tiny_raw / folder), "--format", fmt, "--lake", str(lakes["disk"].root)]) == 0
    for name in TABLES:
        assert _contents(lakes["bucket"], name).equals(_contents(lakes["disk"], name)), name
    items = lakes["bucket"].scan("items").collect()
    with_images = items.filter(pl.col("image").is_not_null())
    assert with_images.height > 0 and with_images["image_uri"].str.starts_with(f"{landing}/items/images/").all()
    assert lakes["bucket"].scan("quarantine").collect()["source_file"].str.starts_with(landing).all()

    before = _contents(lakes["bucket"], "interactions")
    assert main(["ingest", f"{landing}/events", "--format", "events", "--lake", str(lakes["bucket"].root)]) == 0
    assert _contents(lakes["bucket"], "interactions").equals(before), "a rerun from the bucket added rows"
    assert sorted(p.name for p in work.iterdir()) == [], "something was written to the working folder"


def test_a_missing_bucket_folder_is_named(tmp_path, monkeypatch, s3_bucket, capsys):
    monkeypatch.chdir(tmp_path)
    missing = f"s3://{s3_bucket}/landing/events"
    assert main(["ingest", missing, "--format", "events", "--lake", str(tmp_path / "lake")]) == 2
    assert f"{missing}: no such file or folder" in capsys.readouterr().err


def test_the_landing_sensor_lists_the_days_in_the_bucket(s3_bucket):
    landing = f"s3://{s3_bucket}/landing"
    manifest = generate(landing)
    storage.write_text(f"{landing}/events/ds=someday/x.csv", "user_id,item_id,behavior,timestamp\n")
    resources = {"landing": LandingResource(root=landing)}
    instance = DagsterInstance.ephemeral()

    def evaluate():
        return landing_sensor(build_sensor_context(resources=resources, instance=instance))

    first = evaluate()
    keys = {r.partition_key: r.run_key for r in first.run_requests}
    assert sorted(keys) == manifest["days"]
    assert [r.partition_keys for r in first.dynamic_partitions_requests] == [manifest["days"]]
    add_days(instance, manifest["days"])
    again = evaluate()
    assert {r.partition_key: r.run_key for r in again.run_requests} == keys and not again.dynamic_partitions_requests
    day = manifest["days"][1]
    storage.write_text(f"{landing}/events/ds={day}/late.csv", "user_id,item_id,behavior,timestamp\nu,i,pv,1735776000\n")
    changed = {r.partition_key: r.run_key for r in evaluate().run_requests}
    assert [d for d in keys if changed[d] != keys[d]] == [day]


def test_images_named_by_an_items_file_in_the_bucket_stay_under_its_prefix(tmp_path, s3_bucket):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    folder = f"s3://{s3_bucket}/landing/items"
    storage.write_bytes(f"{folder}/img/ok.png", png)
    storage.write_bytes(f"s3://{s3_bucket}/secret.png", b"SECRET in the bucket")
    local = tmp_path / "secret.png"
    local.write_bytes(b"SECRET on the host")
    refs = {
        "good": "img/ok.png",
        "same_store": f"{folder}/img/ok.png",
        "dotdot": "../../secret.png",
        "elsewhere": f"s3://{s3_bucket}/secret.png",
        "local": str(local),
        "file_uri": f"file://{local}",
    }
    rows = "".join(f"{item},title {item},cat,{ref}\n" for item, ref in refs.items())
    storage.write_text(f"{folder}/items.csv", "item_id,title,category,image\n" + rows)
    lake = Lake(tmp_path / "lake")
    ingest(lake, [f"{folder}/items.csv"], "items")
    items = lake.scan("items").sort("item_id").collect()
    assert items["item_id"].to_list() == ["good", "same_store"] and items["image"].to_list() == [png, png]
    quarantine = lake.scan("quarantine").collect()
    reasons = dict(zip(quarantine["raw"].str.split(",").list.first(), quarantine["reason"], strict=True))
    assert sorted(reasons) == ["dotdot", "elsewhere", "file_uri", "local"]
    assert all("outside the allowed folders" in reasons[k] for k in ("dotdot", "elsewhere"))
    assert all("is not on s3://" in reasons[k] for k in ("local", "file_uri"))

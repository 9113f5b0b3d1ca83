"""Exports read back by an independent reader of FORGE's formats, and by sidforge's own ingest."""

import csv

import polars as pl

from ingest.run import ingest
from lake import Lake
from publish.exports import export_item_sid_csv, export_sid_items


def test_item_sid_csv_and_sid_items_agree_with_forge_reading(tmp_path, tiny_raw):
    lake = Lake(tmp_path / "lake")
    ingest(lake, [tiny_raw / "algr" / "item_sid"], "algr-item-sid", build_id="ref")
    item_sid = export_item_sid_csv(lake, "ref", tmp_path / "out")
    sid_items = export_sid_items(lake, "ref", tmp_path / "out")
    forge: dict[str, list[str]] = {}  # what FORGE's calc_hr.convert_csv_to_map builds, positionally
    with open(item_sid) as fh:
        rows = list(csv.reader(fh))[1:]
    for item, c1, c2, c3 in rows:
        forge.setdefault(f"C{int(c1)}C{int(c2) + 8192}C{int(c3) + 16384}", []).append(item)
    with open(sid_items) as fh:
        ours = {r["sid"]: sorted(r["items"].split(";")) for r in csv.DictReader(fh)}
    assert {k: sorted(v) for k, v in forge.items()} == ours
    assert len(rows) == 300
    ingest(lake, [item_sid], "algr-item-sid", build_id="again")
    codes = (
        lake.scan("item_sids")
        .group_by("item_id")
        .agg(pl.col("codes").unique().len().alias("n"))
        .collect()["n"]
        .unique()
        .to_list()
    )
    assert codes == [1]

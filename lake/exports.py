"""Exports for FORGE's tools: the AL-GR GR TSV, an item→SID CSV and SID→items."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from lake.lake import Lake
from lake.shards import read_manifest
from lake.sources.algr import SYSTEM_PROMPT, USER_PREFIX

FORMATS = ("algr-tsv", "item-sid-csv", "sid-items")


def _tokens(column: str) -> pl.Expr:
    return pl.col(column).list.eval(pl.format("C{}", pl.element())).list.join("")


def export_algr_tsv(version: str | Path, out: str | Path) -> list[Path]:
    """One `<split>.tsv` per split (`id, system, user, answer`, C-tokens), as FORGE's trainer reads it."""
    version, out = Path(version), Path(out)
    manifest = read_manifest(version)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in sorted({s["split"] for s in manifest["shards"]}):
        files = [version / s["path"] for s in manifest["shards"] if s["split"] == split]
        frame = pl.read_parquet(files, columns=["example", "history_tokens", "target_tokens"]).sort("example")
        path = out / f"{split}.tsv"
        frame.select(id=pl.col("example"), system=pl.lit(SYSTEM_PROMPT),
                     user=pl.lit(USER_PREFIX) + _tokens("history_tokens"),
                     answer=_tokens("target_tokens")).write_csv(path, separator="\t")
        written.append(path)
    return written


def export_item_sid_csv(lake: Lake, build_id: str, out: str | Path) -> Path:
    """`item_id, codebook_lv1..L` (the AL-GR Item-SID layout, read positionally by FORGE's evaluation)."""
    frame = lake.scan("item_sids").filter(pl.col("build_id") == build_id).select("item_id", "codes").collect()
    if not frame.height:
        raise ValueError(f"build {build_id!r} has no item_sids")
    levels = frame["codes"].list.len().max()
    path = Path(out) / f"item_sid_{build_id}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.sort("item_id").select("item_id", *[pl.col("codes").list.get(i).alias(f"codebook_lv{i + 1}")
                                              for i in range(levels)]).write_csv(path)
    return path


def export_sid_items(lake: Lake, build_id: str, out: str | Path) -> Path:
    """`sid, items` with the items of each SID joined by ';' (FORGE's SID → item lookup)."""
    path = Path(out) / f"sid_items_{build_id}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    (lake.scan("item_sids").filter(pl.col("build_id") == build_id).group_by("sid")
     .agg(items=pl.col("item_id").sort().str.join(";")).sort("sid").collect().write_csv(path))
    return path

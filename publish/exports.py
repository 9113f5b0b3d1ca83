"""Exports for FORGE's tools: the AL-GR GR TSV, an item→SID CSV and SID→items, in AL-GR's token layout.

AL-GR numbers the tokens of level l (0-based) from l × 8192, whatever the codebook sizes: FORGE's
`calc_hr.py` reads `C{c1}C{c2 + 8192}C{c3 + 16384}`. Every export uses that layout (or an explicit stride),
refuses a build with a level larger than the stride, and writes `<format>.manifest.json` beside its files
stating the layout used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from builds.registry import BuildRegistry
from ingest.sources.algr import SYSTEM_PROMPT, USER_PREFIX
from lake.lake import Lake
from publish.manifest import read_manifest
from sid_index.codec import ALGR_CODEBOOK_SIZE, TokenLayout, render_expr

FORMATS = ("algr-tsv", "item-sid-csv", "sid-items")


def _write_manifest(
    out: Path, fmt: str, layout: TokenLayout, build_id: str, files: Sequence[Path], **extra: object
) -> Path:
    path = out / f"{fmt}.manifest.json"
    body = {
        "format": fmt,
        "build_id": build_id,
        "token_layout": layout.as_dict(),
        "files": [f.name for f in files],
        **extra,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def export_algr_tsv(version: str | Path, out: str | Path, stride: int = ALGR_CODEBOOK_SIZE) -> list[Path]:
    """One `<split>.tsv` per split (`id, system, user, answer`, C-tokens in AL-GR's layout), as FORGE's
    trainer reads it; the published version's compact tokens are re-based level by level."""
    version, out = Path(version), Path(out)
    manifest = read_manifest(version)
    published = manifest["token_layout"]
    layout = TokenLayout(tuple(published["sizes"]), stride)
    levels = len(layout.sizes)
    shift = {lv: lv * stride - offset for lv, offset in enumerate(published["offsets"])}

    def tokens(column: str) -> pl.Expr:
        rebased = pl.element() + pl.int_range(pl.len()).mod(levels).replace_strict(shift, return_dtype=pl.Int64)
        return pl.col(column).list.eval(pl.format("C{}", rebased)).list.join("")

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in sorted({s["split"] for s in manifest["shards"]}):
        files = [version / s["path"] for s in manifest["shards"] if s["split"] == split]
        frame = pl.read_parquet(files, columns=["example", "history_tokens", "target_tokens"]).sort("example")
        path = out / f"{split}.tsv"
        frame.select(
            id=pl.col("example"),
            system=pl.lit(SYSTEM_PROMPT),
            user=pl.lit(USER_PREFIX) + tokens("history_tokens"),
            answer=tokens("target_tokens"),
        ).write_csv(path, separator="\t")
        written.append(path)
    _write_manifest(out, "algr-tsv", layout, manifest["sid_build"], written, dataset_version=str(version))
    return written


def _build_sids(lake: Lake, build_id: str, stride: int) -> tuple[pl.DataFrame, TokenLayout]:
    """A build's item codes, and its sizes in the export's layout (refused when a level exceeds the stride)."""
    frame = lake.scan("item_sids").filter(pl.col("build_id") == build_id).select("item_id", "codes").collect()
    if not frame.height:
        raise ValueError(f"build {build_id!r} has no item_sids")
    return frame, TokenLayout(tuple(BuildRegistry(lake).sizes(build_id)), stride)


def export_item_sid_csv(lake: Lake, build_id: str, out: str | Path, stride: int = ALGR_CODEBOOK_SIZE) -> Path:
    """`item_id, codebook_lv1..L` (the AL-GR Item-SID layout, read positionally by FORGE's evaluation, which
    adds the stride per level)."""
    frame, layout = _build_sids(lake, build_id, stride)
    out = Path(out)
    path = out / f"item_sid_{build_id}.csv"
    out.mkdir(parents=True, exist_ok=True)
    frame.sort("item_id").select(
        "item_id", *[pl.col("codes").list.get(i).alias(f"codebook_lv{i + 1}") for i in range(len(layout.sizes))]
    ).write_csv(path)
    _write_manifest(out, "item-sid-csv", layout, build_id, [path])
    return path


def export_sid_items(lake: Lake, build_id: str, out: str | Path, stride: int = ALGR_CODEBOOK_SIZE) -> Path:
    """`sid, items` with the items of each SID joined by ';' (FORGE's SID → item lookup), SIDs in AL-GR's layout."""
    frame, layout = _build_sids(lake, build_id, stride)
    out = Path(out)
    path = out / f"sid_items_{build_id}.csv"
    out.mkdir(parents=True, exist_ok=True)
    sid = render_expr(pl.col("codes"), layout.level_sizes)
    (frame.group_by(sid=sid).agg(items=pl.col("item_id").sort().str.join(";")).sort("sid").write_csv(path))
    _write_manifest(out, "sid-items", layout, build_id, [path])
    return path

"""Exports for FORGE's tools: the AL-GR GR TSV, an item→SID CSV and SID→items, in AL-GR's token layout.

AL-GR numbers the tokens of level l (0-based) from l × 8192, whatever the codebook sizes: FORGE's
`calc_hr.py` reads `C{c1}C{c2 + 8192}C{c3 + 16384}`. Every export uses that layout (or an explicit stride),
refuses a build with a level larger than the stride, and writes `<format>.manifest.json` beside its files
stating the layout used.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from builds.registry import BuildRegistry
from ingest.sources.algr import SYSTEM_PROMPT, USER_PREFIX
from lake import storage
from lake.lake import Lake
from publish.manifest import read_manifest
from sid_index.codec import ALGR_CODEBOOK_SIZE, TokenLayout, render_expr

FORMATS = ("algr-tsv", "item-sid-csv", "sid-items")


def _write_manifest(
    out: str, fmt: str, layout: TokenLayout, build_id: str, files: Sequence[str], **extra: object
) -> str:
    body = {
        "format": fmt,
        "build_id": build_id,
        "token_layout": layout.as_dict(),
        "files": [storage.name_of(f) for f in files],
        **extra,
    }
    return storage.write_text(storage.join(out, f"{fmt}.manifest.json"), json.dumps(body, indent=2, sort_keys=True))


def _write_csv(frame: pl.DataFrame, location: str, separator: str = ",") -> str:
    """`frame` as a CSV file written whole at `location` (a folder or an object store)."""
    buffer = io.BytesIO()
    frame.write_csv(buffer, separator=separator)
    return storage.write_bytes(location, buffer.getvalue())


def export_algr_tsv(version: str | Path, out: str | Path, stride: int = ALGR_CODEBOOK_SIZE) -> list[str]:
    """One `<split>.tsv` per split (`id, system, user, answer`, C-tokens in AL-GR's layout), as FORGE's
    trainer reads it; the published version's compact tokens are re-based level by level."""
    version, out = storage.normalize(version), storage.normalize(out)
    manifest = read_manifest(version)
    published = manifest["token_layout"]
    layout = TokenLayout(tuple(published["sizes"]), stride)
    levels = len(layout.sizes)
    shift = {lv: lv * stride - offset for lv, offset in enumerate(published["offsets"])}

    def tokens(column: str) -> pl.Expr:
        rebased = pl.element() + pl.int_range(pl.len()).mod(levels).replace_strict(shift, return_dtype=pl.Int64)
        return pl.col(column).list.eval(pl.format("C{}", rebased)).list.join("")

    written = []
    for split in sorted({s["split"] for s in manifest["shards"]}):
        files = [storage.join(version, s["path"]) for s in manifest["shards"] if s["split"] == split]
        frame = pl.concat(
            pl.read_parquet(io.BytesIO(storage.read_bytes(f)), columns=["example", "history_tokens", "target_tokens"])
            for f in files
        ).sort("example")
        rows = frame.select(
            id=pl.col("example"),
            system=pl.lit(SYSTEM_PROMPT),
            user=pl.lit(USER_PREFIX) + tokens("history_tokens"),
            answer=tokens("target_tokens"),
        )
        written.append(_write_csv(rows, storage.join(out, f"{split}.tsv"), separator="\t"))
    _write_manifest(out, "algr-tsv", layout, manifest["sid_build"], written, dataset_version=version)
    return written


def _build_sids(lake: Lake, build_id: str, stride: int) -> tuple[pl.DataFrame, TokenLayout]:
    """A build's item codes, and its sizes in the export's layout (refused when a level exceeds the stride)."""
    frame = lake.scan("item_sids").filter(pl.col("build_id") == build_id).select("item_id", "codes").collect()
    if not frame.height:
        raise ValueError(f"build {build_id!r} has no item_sids")
    return frame, TokenLayout(tuple(BuildRegistry(lake).sizes(build_id)), stride)


def export_item_sid_csv(lake: Lake, build_id: str, out: str | Path, stride: int = ALGR_CODEBOOK_SIZE) -> str:
    """`item_id, codebook_lv1..L` (the AL-GR Item-SID layout, read positionally by FORGE's evaluation, which
    adds the stride per level)."""
    frame, layout = _build_sids(lake, build_id, stride)
    out = storage.normalize(out)
    rows = frame.sort("item_id").select(
        "item_id", *[pl.col("codes").list.get(i).alias(f"codebook_lv{i + 1}") for i in range(len(layout.sizes))]
    )
    path = _write_csv(rows, storage.join(out, f"item_sid_{build_id}.csv"))
    _write_manifest(out, "item-sid-csv", layout, build_id, [path])
    return path


def export_sid_items(lake: Lake, build_id: str, out: str | Path, stride: int = ALGR_CODEBOOK_SIZE) -> str:
    """`sid, items` with the items of each SID joined by ';' (FORGE's SID → item lookup), SIDs in AL-GR's layout."""
    frame, layout = _build_sids(lake, build_id, stride)
    out = storage.normalize(out)
    sid = render_expr(pl.col("codes"), layout.level_sizes)
    rows = frame.group_by(sid=sid).agg(items=pl.col("item_id").sort().str.join(";")).sort("sid")
    path = _write_csv(rows, storage.join(out, f"sid_items_{build_id}.csv"))
    _write_manifest(out, "sid-items", layout, build_id, [path])
    return path

"""Item catalogues (item_id, title, category, image path or bytes) in CSV or Parquet, into `items`."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from lake.sources.csvblocks import iter_csv_blocks, resolve_columns
from lake.sources.lines import SourceError, Span
from lake.sources.records import Parsed, reject_frame, split_checked

COLUMNS = {
    "item_id": ("item_id", "base62_string", "item"),
    "title": ("title", "item_title", "name"),
    "category": ("category", "category_path", "cate"),
    "image": ("image", "image_path", "image_uri", "image_url"),
}
OPTIONAL = ("title", "category", "image")


def content_hash(title: str | None, category: str | None, image: bytes | None, image_uri: str | None) -> str:
    """sha256 over what an embedding is built from: title, category and image bytes (or their URI)."""
    digest = hashlib.sha256()
    for part in (title or "", category or ""):
        digest.update(part.encode("utf-8") + b"\x1f")
    digest.update(hashlib.sha256(image).digest() if image is not None else (image_uri or "").encode("utf-8"))
    return digest.hexdigest()


def _load_images(frame: pl.DataFrame, base: Path) -> tuple[pl.DataFrame, int]:
    """Read local image files into bytes; URIs stay URIs. Returns the frame and the count of missing files."""
    images: list[bytes | None] = []
    uris: list[str | None] = []
    missing = 0
    for ref, blob in zip(frame["image_ref"], frame["image_bytes"], strict=True):
        if blob is not None:
            images.append(blob)
            uris.append(ref)
            continue
        if not ref:
            images.append(None)
            uris.append(None)
            continue
        if "://" in ref:
            images.append(None)
            uris.append(ref)
            continue
        file = (base / ref).resolve()
        uris.append(str(file))
        try:
            images.append(file.read_bytes())
        except OSError:
            images.append(None)
            missing += 1
    out = frame.with_columns(image=pl.Series(images, dtype=pl.Binary), image_uri=pl.Series(uris, dtype=pl.String))
    hashes = [content_hash(t, c, i, u) for t, c, i, u in
              zip(out["title"], out["category"], out["image"], out["image_uri"], strict=True)]
    return out.with_columns(content_hash=pl.Series(hashes, dtype=pl.String)), missing


def _finish(frame: pl.DataFrame, path: Path, day: str, raw: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    checks = [
        (pl.col("reason").is_not_null(), pl.col("reason")),
        (pl.col("item_id").fill_null("") == "", "empty item id"),
        (pl.col("title").fill_null("").str.strip_chars().eq("") & pl.col("image_ref").fill_null("").eq("")
         & pl.col("image_bytes").is_null(), "item has neither title nor image"),
    ]
    rows, rejects = split_checked(frame, checks=checks, table_name="items", source=path, raw=raw, ds=day,
                                  columns=["item_id", "title", "category", "image_ref", "image_bytes", "line"])
    rows, missing = _load_images(rows, path.parent)
    rows = rows.with_columns(first_seen_ds=pl.lit(day), source=pl.lit(path.name)).drop("image_ref", "image_bytes")
    return rows, rejects, missing


def read_items(path: str | Path, *, ds: str | None = None, span: Span | None = None) -> Iterator[Parsed]:
    """Stream an item catalogue; items with neither title nor image are quarantined."""
    path = Path(path)
    day = ds or dt.date.today().isoformat()
    if path.suffix == ".parquet":
        try:
            handle = pq.ParquetFile(path)
        except OSError as exc:
            raise SourceError(f"cannot read {path} as Parquet: {exc}") from exc
        positions = resolve_columns(path, handle.schema_arrow.names, COLUMNS, OPTIONAL)
        names = {k: handle.schema_arrow.names[v] for k, v in positions.items()}
        first = 1
        for batch in handle.iter_batches(batch_size=65_536, columns=list(names.values())):
            frame = pl.from_arrow(batch).rename({v: k for k, v in names.items()})  # type: ignore[union-attr]
            image = frame["image"] if "image" in frame.columns else None
            frame = frame.with_row_index("line", offset=first).with_columns(
                pl.col("line").cast(pl.Int64),
                *(pl.lit(None, pl.String).alias(c) for c in ("title", "category") if c not in frame.columns),
                image_ref=(pl.col("image").cast(pl.String) if image is not None and image.dtype == pl.String
                           else pl.lit(None, pl.String)),
                image_bytes=(pl.col("image") if image is not None and image.dtype == pl.Binary
                             else pl.lit(None, pl.Binary)),
                reason=pl.lit(None, pl.String),
            )
            first += batch.num_rows
            raw = pl.struct("item_id", "title", "category", "image_ref").struct.json_encode()
            rows, rejects, missing = _finish(frame, path, day, raw)
            yield Parsed("items", rows, rejects, missing_images=missing)
        return
    for block in iter_csv_blocks(path, COLUMNS, optional=OPTIONAL, span=span):
        frame = block.frame.with_columns(image_ref=pl.col("image"), image_bytes=pl.lit(None, pl.Binary))
        rows, rejects, missing = _finish(frame, path, day, block.raw)
        bad = reject_frame(path, [(n, t, "invalid UTF-8") for n, t in block.bad_utf8], day)
        yield Parsed("items", rows, pl.concat([rejects, bad]), block.blank, missing_images=missing)

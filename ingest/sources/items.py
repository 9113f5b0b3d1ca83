"""Item catalogues (item_id, title, category, image path or bytes) in CSV or Parquet, into `items`."""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

import polars as pl
import pyarrow.parquet as pq

from ingest.sources.csvblocks import iter_csv_blocks, resolve_columns
from ingest.sources.limits import Limits
from ingest.sources.lines import SourceError, Span, check_columns
from ingest.sources.records import Parsed, split_checked, utf8_rejects
from lake import storage
from lake.catalog import today
from lake.frames import to_frame

COLUMNS = {
    "item_id": ("item_id", "base62_string", "item"),
    "title": ("title", "item_title", "name"),
    "category": ("category", "category_path", "cate"),
    "image": ("image", "image_path", "image_uri", "image_url"),
}
OPTIONAL = ("title", "category", "image")
FETCH_TIMEOUT = 10.0
IMAGE_READERS = 16  # image files read at once per block of an items file


def content_hash(title: str | None, category: str | None, image: bytes | None, image_uri: str | None) -> str:
    """sha256 over what an embedding is built from: title, category and image bytes (or their URI)."""
    digest = hashlib.sha256()
    for part in (title or "", category or ""):
        digest.update(part.encode("utf-8") + b"\x1f")
    digest.update(hashlib.sha256(image).digest() if image is not None else (image_uri or "").encode("utf-8"))
    return digest.hexdigest()


def _roots(base: str, limits: Limits) -> list[str]:
    return [storage.normalize(base), *(storage.normalize(r) for r in limits.image_roots)]


def image_file(ref: str, base: str | Path, limits: Limits) -> tuple[str | None, str | None]:
    """The file an image reference names (relative to `base`, absolute, `file://`, or on the object store
    that `base` lies on), when it lies inside `base` or an allowed root after resolving links and `..`;
    else (None, the reason it is refused)."""
    base = str(base)
    if storage.is_uri(base):
        scheme = base.split("://", 1)[0]
        if ref.startswith("/") or ("://" in ref and not ref.startswith(f"{scheme}://")):
            return None, f"image path {ref!r} is not on {scheme}://, where the items file lies; it is not read"
        raw = ref.split("://", 1)[1] if ref.startswith(f"{scheme}://") else f"{base.split('://', 1)[1]}/{ref}"
        file = f"{scheme}://{posixpath.normpath(raw)}"
    else:
        raw = unquote(urlparse(ref).path) if ref.startswith("file://") else ref
        try:
            file = str((Path(base) / raw).resolve())
        except OSError as exc:  # a link that changed while it was resolved, a loop, a name too long
            return None, f"image path {ref!r} could not be resolved ({exc}); it is not read"
    roots = _roots(base, limits)
    if not any(file.startswith(root.rstrip("/") + "/") for root in roots):
        return None, (
            f"image path {ref!r} resolves outside the allowed folders ({', '.join(roots)}); "
            "add a folder with SIDFORGE_IMAGE_ROOTS to allow it"
        )
    return file, None


def read_image(file: str, limits: Limits) -> tuple[bytes | None, str | None]:
    """A regular file's bytes up to the record limit; (None, reason) for devices, pipes and oversized files,
    (None, None) for a missing file. An object is read with one request (an object store has no devices)."""
    if storage.is_uri(file):
        fs, path = storage.filesystem(file)
        try:
            with fs.open_input_stream(path, compression=None) as fh:
                data = fh.read(limits.max_record_bytes + 1)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"image path {file} could not be read ({exc})"
        if len(data) > limits.max_record_bytes:
            return None, f"image {file} is over the {limits.max_record_bytes:,}-byte limit"
        return data, None
    try:
        found = _regular_file(file)
    except OSError:
        return None, None
    if found is None:
        return None, f"image path {file} is not a regular file"
    if found > limits.max_record_bytes:
        return None, f"image {file} has {found:,} bytes, over the {limits.max_record_bytes:,}-byte limit"
    try:
        with open(file, "rb") as fh:
            data = fh.read(limits.max_record_bytes + 1)
    except OSError:
        return None, None
    if len(data) > limits.max_record_bytes:
        return None, f"image {file} grew past the {limits.max_record_bytes:,}-byte limit while read"
    return data, None


def _regular_file(file: str) -> int | None:
    """The size of a local regular file, None for anything else (a device, a pipe, a folder); OSError when
    absent."""
    info = os.stat(file)
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def fetch_image(uri: str, limits: Limits) -> tuple[bytes | None, str | None]:
    """A remote image (http/https) when `limits.fetch_images`, with a size cap and a timeout."""
    if not limits.fetch_images or urlparse(uri).scheme not in ("http", "https"):
        return None, None
    try:
        with urllib.request.urlopen(uri, timeout=FETCH_TIMEOUT) as response:
            data = response.read(limits.max_record_bytes + 1)
    except (OSError, ValueError) as exc:
        return None, f"image {uri} could not be fetched ({exc})"
    if len(data) > limits.max_record_bytes:
        return None, f"image {uri} is over the {limits.max_record_bytes:,}-byte limit"
    return data, None


def _remote(ref: str, base: str) -> bool:
    """Whether an image reference is a URI to fetch (http, https) rather than a file on the items file's own
    store (a path, `file://`, or the object store that `base` lies on)."""
    if "://" not in ref or ref.startswith("file://"):
        return False
    return not (storage.is_uri(base) and ref.split("://", 1)[0] == base.split("://", 1)[0])


def _load_images(frame: pl.DataFrame, base: str, limits: Limits) -> tuple[pl.DataFrame, int]:
    """Read image files (inside the allowed folders) into bytes, IMAGE_READERS at a time (an object store
    answers each request in milliseconds, so one at a time would leave it idle); URIs to fetch stay URIs.
    Returns the frame with an `image_reason` for refused references, and the count of missing files."""
    images: list[bytes | None] = []
    uris: list[str | None] = []
    reasons: list[str | None] = []
    reads: dict[int, str] = {}
    for ref, blob in zip(frame["image_ref"], frame["image_bytes"], strict=True):
        image, uri, reason = blob, ref, None
        if blob is None and ref and _remote(ref, base):
            image, reason = fetch_image(ref, limits)
        elif blob is None and ref:
            file, reason = image_file(ref, base, limits)
            uri = file or ref
            if file is not None:
                reads[len(images)] = file
        elif blob is None:
            uri = None
        images.append(image)
        uris.append(uri)
        reasons.append(reason)
    missing = 0
    if reads:
        with ThreadPoolExecutor(max_workers=min(IMAGE_READERS, len(reads))) as pool:
            found = pool.map(lambda f: read_image(f, limits), reads.values())
            for at, (image, reason) in zip(reads, found, strict=True):
                images[at], reasons[at] = image, reason
                missing += image is None and reason is None
    out = frame.with_columns(
        image=pl.Series(images, dtype=pl.Binary),
        image_uri=pl.Series(uris, dtype=pl.String),
        image_reason=pl.Series(reasons, dtype=pl.String),
    )
    hashes = [
        content_hash(t, c, i, u)
        for t, c, i, u in zip(out["title"], out["category"], out["image"], out["image_uri"], strict=True)
    ]
    return out.with_columns(content_hash=pl.Series(hashes, dtype=pl.String)), missing


def _finish(
    frame: pl.DataFrame, path: str | Path, day: str, raw: pl.Expr, limits: Limits
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    frame, missing = _load_images(frame, str(path).rstrip("/").rsplit("/", 1)[0], limits)
    checks: list[tuple[pl.Expr, pl.Expr | str]] = [
        (pl.col("reason").is_not_null(), pl.col("reason")),
        (pl.col("item_id").fill_null("") == "", "empty item id"),
        (
            pl.col("title").fill_null("").str.strip_chars().eq("")
            & pl.col("image_ref").fill_null("").eq("")
            & pl.col("image_bytes").is_null(),
            "item has neither title nor image",
        ),
        (pl.col("image_reason").is_not_null(), pl.col("image_reason")),
    ]
    rows, rejects = split_checked(
        frame,
        checks=checks,
        table_name="items",
        source=path,
        raw=raw,
        ds=day,
        columns=["item_id", "title", "category", "image", "image_uri", "content_hash", "line"],
    )
    return rows.with_columns(first_seen_ds=pl.lit(day), source=pl.lit(storage.name_of(path))), rejects, missing


def read_items(
    path: str | Path, *, ds: str | None = None, span: Span | None = None, limits: Limits | None = None
) -> Iterator[Parsed]:
    """Stream an item catalogue; items with neither title nor image, or whose image reference leaves the
    allowed folders, are quarantined."""
    limits = limits or Limits()
    day = ds or today()
    if str(path).endswith(".parquet"):
        try:
            handle = pq.ParquetFile(storage.open_input(path))
        except OSError as exc:
            raise SourceError(f"cannot read {path} as Parquet: {exc}") from exc
        check_columns(path, handle.metadata.num_columns, limits)
        positions = resolve_columns(path, handle.schema_arrow.names, COLUMNS, OPTIONAL, limits)
        names = {k: handle.schema_arrow.names[v] for k, v in positions.items()}
        first = 1
        for batch in handle.iter_batches(batch_size=65_536, columns=list(names.values())):
            frame = to_frame(batch).rename({v: k for k, v in names.items()})
            image = frame["image"] if "image" in frame.columns else None
            frame = frame.with_row_index("line", offset=first).with_columns(
                pl.col("line").cast(pl.Int64),
                *(pl.lit(None, pl.String).alias(c) for c in ("title", "category") if c not in frame.columns),
                image_ref=(
                    pl.col("image").cast(pl.String)
                    if image is not None and image.dtype == pl.String
                    else pl.lit(None, pl.String)
                ),
                image_bytes=(
                    pl.col("image") if image is not None and image.dtype == pl.Binary else pl.lit(None, pl.Binary)
                ),
                reason=pl.lit(None, pl.String),
            )
            first += batch.num_rows
            raw = pl.struct("item_id", "title", "category", "image_ref").struct.json_encode()
            rows, rejects, missing = _finish(frame, path, day, raw, limits)
            yield Parsed("items", rows, rejects, missing_images=missing)
        return
    for block in iter_csv_blocks(path, COLUMNS, optional=OPTIONAL, span=span, limits=limits):
        frame = block.frame.with_columns(image_ref=pl.col("image"), image_bytes=pl.lit(None, pl.Binary))
        rows, rejects, missing = _finish(frame, path, day, block.raw, limits)
        bad = utf8_rejects(path, block.bad_utf8, day)
        yield Parsed("items", rows, pl.concat([rejects, bad]), block.blank, missing_images=missing)

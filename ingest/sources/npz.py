"""npz embeddings (`ids` + `embeds`, or the contrastive file's pickled `itemEncID`) streamed in chunks."""

from __future__ import annotations

import pickle
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl
import pyarrow as pa

from ingest.sources.limits import Limits
from ingest.sources.lines import RejectedFile, SourceError
from ingest.sources.records import Parsed, reject_frame
from lake import storage
from lake.catalog import today

CHUNK_ROWS = 65_536


def _header(member: IO[bytes], name: str, path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    except ValueError as exc:
        raise SourceError(f"{path}: array {name!r} has an unreadable header ({exc})") from exc
    if fortran and len(shape) > 1:
        raise SourceError(f"{path}: array {name!r} is Fortran-ordered; save it C-ordered")
    return shape, dtype


def _rows(member: IO[bytes], shape: tuple[int, ...], dtype: np.dtype, chunk: int) -> Iterator[np.ndarray]:
    per_row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    for start in range(0, shape[0], chunk):
        count = min(chunk, shape[0] - start)
        data = member.read(count * per_row)
        yield np.frombuffer(data, dtype=dtype).reshape((count, *shape[1:]))


def _trusted_ids(archive: zipfile.ZipFile, path: str | Path) -> np.ndarray:
    """Item ids by row from the pickled `itemEncID` dict (id -> row, or row -> id)."""
    with archive.open("itemEncID.npy") as member:
        mapping = np.load(member, allow_pickle=True)
    return _ids_from_mapping(mapping, path)


def _ids_from_mapping(mapping: object, path: str | Path) -> np.ndarray:
    if isinstance(mapping, np.ndarray) and mapping.dtype == object and mapping.shape == ():
        mapping = mapping.item()
    if not isinstance(mapping, dict):
        raise SourceError(f"{path}: itemEncID is a {type(mapping).__name__}, expected a dict")
    pairs = list(mapping.items())
    if pairs and all(isinstance(v, int | np.integer) for _, v in pairs):
        ids = np.empty(len(pairs), dtype=object)
        for key, row in pairs:
            ids[int(row)] = str(key)
        return ids
    ids = np.empty(len(pairs), dtype=object)
    for row, key in pairs:
        ids[int(row)] = str(key)
    return ids


def _check_inflation(archive: zipfile.ZipFile, path: str | Path, limits: Limits) -> None:
    """Refuse an archive whose members inflate past the limits (before any of it is decompressed)."""
    inflated = sum(info.file_size for info in archive.infolist())
    packed = max(storage.info(path).size or 0, 1)
    if inflated > limits.max_inflated_bytes:
        raise RejectedFile(path, f"inflates to {inflated:,} bytes, past {limits.max_inflated_bytes:,}; file skipped")
    if inflated > limits.ratio_floor and inflated > limits.max_inflate_ratio * packed:
        raise RejectedFile(
            path,
            f"inflates to {inflated:,} bytes, more than {limits.max_inflate_ratio}x its {packed:,} bytes; file skipped",
        )


def read_npz(
    path: str | Path,
    *,
    model: str,
    trust_pickle: bool = False,
    ds: str | None = None,
    chunk: int = CHUNK_ROWS,
    limits: Limits | None = None,
) -> Iterator[Parsed]:
    """Stream `embeds` rows with their ids; a pickled `itemEncID` is loaded only with trust_pickle."""
    day = ds or today()
    try:
        handle = storage.open_input(path)
        archive = zipfile.ZipFile(handle)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SourceError(f"cannot read {path} as an npz archive: {exc}") from exc
    with handle, archive:
        _check_inflation(archive, path, limits or Limits())
        names = {n.removesuffix(".npy") for n in archive.namelist()}
        if "embeds" not in names:
            raise SourceError(f"{path}: no 'embeds' array (found {sorted(names)})")
        if "ids" in names:
            with archive.open("ids.npy") as member:
                shape, dtype = _header(member, "ids", path)
                if dtype.hasobject:
                    raise SourceError(f"{path}: 'ids' is a pickled object array; store ids as strings")
                if len(shape) != 1:
                    raise SourceError(f"{path}: 'ids' must be a 1-d array, found shape {shape}")
                ids = np.concatenate(list(_rows(member, shape, dtype, max(shape[0], 1)))) if shape[0] else np.array([])
        elif "itemEncID" in names:
            if not trust_pickle:
                raise SourceError(
                    f"{path}: 'itemEncID' is a pickled object; loading it can run arbitrary code. "
                    "Pass --trust-pickle (trust_pickle=True) only if you trust this file."
                )
            try:
                ids = _trusted_ids(archive, path)
            except (pickle.UnpicklingError, ValueError, EOFError) as exc:
                raise SourceError(f"{path}: cannot unpickle itemEncID: {exc}") from exc
        else:
            raise SourceError(f"{path}: no 'ids' or 'itemEncID' array (found {sorted(names)})")
        try:
            with archive.open("embeds.npy") as member:
                shape, dtype = _header(member, "embeds", path)
                if len(shape) != 2 or dtype.hasobject:
                    raise SourceError(f"{path}: 'embeds' must be a 2-d numeric array, found shape {shape} {dtype}")
                if shape[0] != len(ids):
                    raise SourceError(f"{path}: {len(ids)} ids but {shape[0]} embedding rows")
                start = 0
                for block in _rows(member, shape, dtype, chunk):
                    yield _block(path, ids[start : start + len(block)], block, start, model, day)
                    start += len(block)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
            raise SourceError(f"{path}: 'embeds' cannot be read ({type(exc).__name__}: {exc})") from exc


def _block(path: str | Path, ids: np.ndarray, vectors: np.ndarray, start: int, model: str, day: str) -> Parsed:
    vectors = vectors.astype(np.float32)
    lines = np.arange(start + 1, start + len(vectors) + 1, dtype=np.int64)
    id_text = np.array([str(i).strip() for i in ids], dtype=object)
    empty = id_text == ""
    finite = np.isfinite(vectors).all(axis=1)
    good = ~empty & finite
    bad = [
        (
            int(lines[i]),
            f"{id_text[i]}: {np.array2string(vectors[i][:8], precision=4)}...",
            "empty item id" if empty[i] else "vector has NaN or infinite values",
        )
        for i in np.flatnonzero(~good)
    ]
    rows = pl.DataFrame(
        {
            "item_id": pl.Series(id_text[good].tolist(), dtype=pl.String),
            "line": lines[good],
            "embedding": pl.Series(
                pa.FixedSizeListArray.from_arrays(pa.array(vectors[good].reshape(-1)), vectors.shape[1])
            ).cast(pl.List(pl.Float32)),
        }
    ).with_columns(
        dim=pl.lit(vectors.shape[1], pl.Int32),
        modalities=pl.lit("precomputed"),
        content_hash=pl.lit(None, pl.String),
        source=pl.lit(storage.name_of(path)),
        model=pl.lit(model),
    )
    return Parsed("item_embeddings", rows, reject_frame(path, bad, day))

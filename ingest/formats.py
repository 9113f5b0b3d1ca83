"""Input formats: which reader parses a file, which table it feeds, and how rows are de-duplicated."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from ingest.sources.algr import (
    EMBEDDING_DIM,
    read_gr_instructions,
    read_item_embeddings,
    read_item_sids,
    read_sequences,
)
from ingest.sources.events import DEDUP_KEYS, read_events
from ingest.sources.items import read_items
from ingest.sources.limits import Limits
from ingest.sources.lines import SourceError, Span
from ingest.sources.npz import read_npz
from ingest.sources.records import Parsed
from lake import storage
from sid_index.codec import ALGR_CODEBOOK_SIZE


@dataclass(frozen=True)
class ReadOptions:
    """Settings a reader may need; defaults follow the AL-GR publication."""

    ds: str | None = None
    model: str | None = None
    build_id: str | None = None
    trust_pickle: bool = False
    dim: int = EMBEDDING_DIM
    codebook_size: int = ALGR_CODEBOOK_SIZE
    span: Span | None = None
    limits: Limits = field(default_factory=Limits)


Reader = Callable[[str, ReadOptions], Iterator[Parsed]]  # a local path or an object-store URI


@dataclass(frozen=True)
class Format:
    """An input format: its reader, target table, whether it merges by key, the keys that make a duplicate,
    and whether its text files can be read in spans of lines (one record per line)."""

    name: str
    table: str
    suffixes: tuple[str, ...]
    reader: Reader
    dedup: tuple[str, ...] = ()
    merge: bool = False
    keep_on_update: tuple[str, ...] = ()
    splittable: bool = False

    def read(self, path: str, opts: ReadOptions) -> Iterator[Parsed]:
        """Parse one file of this format (a local path or an object-store URI) into validated blocks."""
        return self.reader(path, opts)


def _events(path: str, o: ReadOptions) -> Iterator[Parsed]:
    return read_events(path, ds=o.ds, span=o.span, limits=o.limits)


def _sequences(path: str, o: ReadOptions) -> Iterator[Parsed]:
    return read_sequences(path, ds=o.ds, span=o.span, limits=o.limits)


def _gr_instructions(path: str, o: ReadOptions) -> Iterator[Parsed]:
    return read_gr_instructions(path, ds=o.ds, limits=o.limits)


def _item_embeddings(path: str, o: ReadOptions) -> Iterator[Parsed]:
    return read_item_embeddings(
        path, model=o.model or "algr-item-emb", dim=o.dim, ds=o.ds, span=o.span, limits=o.limits
    )


def _item_sids(path: str, o: ReadOptions) -> Iterator[Parsed]:
    return read_item_sids(
        path, build_id=o.build_id or "algr", codebook_size=o.codebook_size, ds=o.ds, span=o.span, limits=o.limits
    )


def _npz(path: str, o: ReadOptions) -> Iterator[Parsed]:
    return read_npz(path, model=o.model or f"npz-{_stem(path)}", trust_pickle=o.trust_pickle, ds=o.ds, limits=o.limits)


def _items(path: str, o: ReadOptions) -> Iterator[Parsed]:
    return read_items(path, ds=o.ds, span=o.span, limits=o.limits)


_TEXT = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".csv.zst", ".csv.bz2")
FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("events", "interactions", (*_TEXT, ".parquet"), _events, DEDUP_KEYS, splittable=True),
        Format("algr-sequences", "user_sequences", _TEXT, _sequences, splittable=True),
        Format("algr-item-emb", "item_embeddings", _TEXT, _item_embeddings, ("item_id",), splittable=True),
        Format("algr-item-sid", "item_sids", _TEXT, _item_sids, ("item_id",), splittable=True),
        Format("algr-gr-tsv", "user_sequences", _TEXT, _gr_instructions),
        Format("npz", "item_embeddings", (".npz",), _npz, ("item_id",)),
        Format(
            "items",
            "items",
            (*_TEXT, ".parquet"),
            _items,
            ("item_id",),
            merge=True,
            keep_on_update=("first_seen_ds",),
            splittable=True,
        ),
    ]
}


def get_format(name: str) -> Format:
    """The format called `name`; a clear error listing the known formats otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}") from None


def expand_paths(paths: Sequence[str | Path], fmt: Format) -> list[str]:
    """Files to ingest, local or on an object store (`s3://...`), each spelled once (`storage.normalize`:
    local paths absolute with symlinks resolved): given files as they are, folders searched recursively for
    the format's suffixes. A file named twice is ingested once."""
    files: list[str] = []
    for raw in paths:
        location = storage.normalize(raw)
        kind = _kind(location)
        if kind == pafs.FileType.Directory:
            found = sorted(f for f in _files_under(location) if storage.name_of(f).lower().endswith(fmt.suffixes))
            if not found:
                raise SourceError(f"{location}: no {fmt.name} files ({', '.join(fmt.suffixes)}) in this folder")
            files += found
        elif kind == pafs.FileType.File:
            files.append(location)
        else:
            raise SourceError(f"{location}: no such file or folder")
    return list(dict.fromkeys(files))


def _kind(location: str) -> pafs.FileType | None:
    if not storage.is_uri(location):
        path = Path(location)
        return pafs.FileType.Directory if path.is_dir() else pafs.FileType.File if path.is_file() else None
    try:
        return storage.info(location).type
    except OSError as exc:
        raise SourceError(f"{location}: cannot be listed ({exc})") from exc


def _files_under(folder: str) -> list[str]:
    """The files under a folder: an object store's listing, or a local walk that resolves each file's links
    (and does not descend into linked folders)."""
    if storage.is_uri(folder):
        return storage.list_files(folder)
    return list(dict.fromkeys(storage.normalize(p) for p in Path(folder).rglob("*") if p.is_file()))


def default_model(fmt: Format, files: Sequence[str]) -> str:
    """Embedding model name for precomputed vectors: AL-GR Item-EMB or the npz file's stem."""
    return "algr-item-emb" if fmt.name == "algr-item-emb" else f"npz-{_stem(files[0])}"


def default_build(files: Sequence[str]) -> str:
    """Build id for imported AL-GR semantic IDs, from the first file's name."""
    return f"algr-{storage.name_of(files[0]).split('.')[0]}"


def _stem(location: str) -> str:
    name = storage.name_of(location)
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name

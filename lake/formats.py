"""Input formats: which reader parses a file, which table it feeds, and how rows are de-duplicated."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lake.provenance import normalise
from lake.sources.algr import (
    ALGR_CODEBOOK_SIZE,
    EMBEDDING_DIM,
    read_gr_instructions,
    read_item_embeddings,
    read_item_sids,
    read_sequences,
)
from lake.sources.events import DEDUP_KEYS, read_events
from lake.sources.items import read_items
from lake.sources.limits import Limits
from lake.sources.lines import SourceError, Span
from lake.sources.npz import read_npz
from lake.sources.records import Parsed


@dataclass(frozen=True)
class Format:
    """An input format: target table, whether it merges by key, the keys that make a duplicate, and whether
    its text files can be read in spans of lines (one record per line)."""

    name: str
    table: str
    suffixes: tuple[str, ...]
    dedup: tuple[str, ...] = ()
    merge: bool = False
    keep_on_update: tuple[str, ...] = ()
    splittable: bool = False


_TEXT = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".csv.zst", ".csv.bz2")
FORMATS: dict[str, Format] = {f.name: f for f in [
    Format("events", "interactions", (*_TEXT, ".parquet"), DEDUP_KEYS, splittable=True),
    Format("algr-sequences", "user_sequences", _TEXT, splittable=True),
    Format("algr-item-emb", "item_embeddings", _TEXT, ("item_id",), splittable=True),
    Format("algr-item-sid", "item_sids", _TEXT, ("item_id",), splittable=True),
    Format("algr-gr-tsv", "user_sequences", _TEXT),
    Format("npz", "item_embeddings", (".npz",), ("item_id",)),
    Format("items", "items", (*_TEXT, ".parquet"), ("item_id",), merge=True, keep_on_update=("first_seen_ds",),
           splittable=True),
]}


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


def get_format(name: str) -> Format:
    """The format called `name`; a clear error listing the known formats otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}") from None


def expand_paths(paths: Sequence[str | Path], fmt: Format) -> list[Path]:
    """Files to ingest, each spelled once (absolute, symlinks resolved): given files as they are, folders
    searched recursively for the format's suffixes. A file named twice is ingested once."""
    files: list[Path] = []
    for raw in paths:
        path = normalise(raw)
        if path.is_dir():
            found = sorted(normalise(p) for p in path.rglob("*")
                           if p.is_file() and p.name.lower().endswith(fmt.suffixes))
            if not found:
                raise SourceError(f"{path}: no {fmt.name} files ({', '.join(fmt.suffixes)}) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(f"{path}: no such file or folder")
    return list(dict.fromkeys(files))


def default_model(fmt: Format, files: Sequence[Path]) -> str:
    """Embedding model name for precomputed vectors: AL-GR Item-EMB or the npz file's stem."""
    return "algr-item-emb" if fmt.name == "algr-item-emb" else f"npz-{files[0].stem}"


def default_build(files: Sequence[Path]) -> str:
    """Build id for imported AL-GR semantic IDs, from the first file's name."""
    return f"algr-{files[0].name.split('.')[0]}"


def read_file(fmt: Format, path: Path, opts: ReadOptions) -> Iterator[Parsed]:
    """Parse one file of format `fmt` into validated blocks."""
    match fmt.name:
        case "events":
            return read_events(path, ds=opts.ds, span=opts.span, limits=opts.limits)
        case "algr-sequences":
            return read_sequences(path, ds=opts.ds, span=opts.span, limits=opts.limits)
        case "algr-gr-tsv":
            return read_gr_instructions(path, ds=opts.ds, limits=opts.limits)
        case "algr-item-emb":
            return read_item_embeddings(path, model=opts.model or "algr-item-emb", dim=opts.dim, ds=opts.ds,
                                        span=opts.span, limits=opts.limits)
        case "algr-item-sid":
            return read_item_sids(path, build_id=opts.build_id or "algr", codebook_size=opts.codebook_size,
                                  ds=opts.ds, span=opts.span, limits=opts.limits)
        case "npz":
            return read_npz(path, model=opts.model or f"npz-{path.stem}", trust_pickle=opts.trust_pickle,
                            ds=opts.ds, limits=opts.limits)
        case "items":
            return read_items(path, ds=opts.ds, span=opts.span, limits=opts.limits)
    raise ValueError(f"no reader for format {fmt.name!r}")

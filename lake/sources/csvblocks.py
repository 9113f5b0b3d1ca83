"""Header-mapped CSV blocks: numbered lines split into named string columns, bad lines set aside."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from lake.sources.lines import SourceError, iter_line_blocks, read_header, split_fields


@dataclass(frozen=True)
class CsvBlock:
    """One block of a CSV file: `frame` has `line`, `text` and one string column per wanted name.

    `reason` is set for lines with the wrong number of fields; `bad_utf8` and `blank` are the lines
    that could not become records.
    """

    frame: pl.DataFrame
    bad_utf8: list[tuple[int, str]]
    blank: int


def resolve_columns(path: str | Path, header: Sequence[str], wanted: Mapping[str, Sequence[str]],
                    optional: Sequence[str] = ()) -> dict[str, int]:
    """Positions of the wanted columns, matched by any of their accepted header names."""
    lowered = [h.lower() for h in header]
    found: dict[str, int] = {}
    for name, aliases in wanted.items():
        for alias in aliases:
            if alias in lowered:
                found[name] = lowered.index(alias)
                break
        else:
            if name not in optional:
                raise SourceError(
                    f"{path}: no column for {name!r} in header {list(header)}; expected one of {list(aliases)}")
    return found


def iter_csv_blocks(path: str | Path, wanted: Mapping[str, Sequence[str]], *, optional: Sequence[str] = (),
                    delimiter: str = ",") -> Iterator[CsvBlock]:
    """Yield CSV blocks of `path` with the wanted columns extracted by header name."""
    header = read_header(path, delimiter)
    positions = resolve_columns(path, header, wanted, optional)
    width = len(header)
    for block in iter_line_blocks(path, skip=1):
        blank = pl.col("text").str.strip_chars() == ""
        lines = block.lines.filter(~blank)
        nblank = block.lines.height - lines.height
        split = split_fields(lines, delimiter).with_columns(nfields=pl.col("fields").list.len())
        frame = split.with_columns(
            reason=pl.when(pl.col("nfields") != width)
            .then(pl.format("expected {} fields, found {}", pl.lit(width), pl.col("nfields")))
            .otherwise(pl.lit(None, pl.String)),
            **{name: pl.col("fields").list.get(pos, null_on_oob=True).str.strip_chars()
               for name, pos in positions.items()},
        ).drop("fields", "nfields")
        for name in wanted:
            if name not in positions:
                frame = frame.with_columns(pl.lit(None, pl.String).alias(name))
        yield CsvBlock(frame, block.bad_utf8, nblank)

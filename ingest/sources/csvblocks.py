"""Header-mapped CSV blocks: numbered lines split into named string columns, bad lines set aside."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ingest.sources.limits import Limits
from ingest.sources.lines import (
    SAMPLE_BYTES,
    Oversized,
    SourceError,
    Span,
    check_columns,
    count_byte,
    iter_byte_blocks,
    line_block,
    read_header,
    shown,
    split_fields,
)


@dataclass(frozen=True)
class CsvBlock:
    """One block of a CSV file: `frame` has `line` and one string column per wanted name.

    `reason` is set for lines with the wrong number of fields; `raw` renders a line's original text
    (for quarantine); `bad_utf8` and `blank` are the lines that could not become records.
    """

    frame: pl.DataFrame
    raw: pl.Expr
    bad_utf8: list[tuple[int, str]]
    blank: int


def resolve_columns(
    path: str | Path,
    header: Sequence[str],
    wanted: Mapping[str, Sequence[str]],
    optional: Sequence[str] = (),
    limits: Limits | None = None,
) -> dict[str, int]:
    """Positions of the wanted columns, matched by any of their accepted header names; a header (or Parquet
    schema) wider than `limits.max_columns` fails the file."""
    check_columns(path, len(header), limits)
    positions: dict[str, int] = {}
    for at, column in enumerate(header):
        positions.setdefault(column.lower(), at)
    found: dict[str, int] = {}
    for name, aliases in wanted.items():
        for alias in aliases:
            if alias in positions:
                found[name] = positions[alias]
                break
        else:
            if name not in optional:
                raise SourceError(
                    f"{path}: no column for {name!r} in header {shown(header)}; expected one of {list(aliases)}"
                )
    return found


def _fast_block(data: bytes, first: int, lines: int, width: int, delimiter: str) -> pl.DataFrame | None:
    """Parse a clean block with Polars' native reader; None when the block needs line-by-line care.

    Clean means: no quotes or carriage returns, exactly width-1 delimiters per line, valid UTF-8 and
    no blank lines, so that row i is line first+i.
    """
    if b'"' in data or b"\r" in data:
        return None
    if count_byte(data, ord(delimiter)) != lines * (width - 1):
        return None
    names = [f"_c{i}" for i in range(width)]
    try:
        frame = pl.read_csv(
            data,
            has_header=False,
            new_columns=names,
            schema={n: pl.String for n in names},
            separator=delimiter,
            quote_char=None,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError):
        return None
    if frame.height != lines:
        return None
    return frame.with_columns(line=pl.int_range(first, first + lines, dtype=pl.Int64))


UNTERMINATED = "unterminated quoted field (a quote opened and never closed)"


def _join_quoted(lines: pl.DataFrame, pending: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Lines joined into records where a quoted field spans lines (an odd number of quotes opens a record
    that runs to the next line with an odd number). Returns the records and the lines of a record still open
    at the end of the block (to be continued by the next one)."""
    lines = pl.concat([pending, lines]) if pending.height else lines
    odd = (lines["text"].str.count_matches('"', literal=True) % 2 == 1).to_numpy()
    if not odd.any():
        return lines, lines.clear()
    inside = (np.cumsum(odd) - odd) % 2 == 1  # an open quote carried into this line
    record = np.cumsum(~inside)
    open_tail = (np.cumsum(odd)[-1] % 2) == 1
    tail = lines.filter(pl.Series(record == record[-1])) if open_tail else lines.clear()
    body = lines.filter(pl.Series(record != record[-1])) if open_tail else lines
    body = (
        body.with_columns(_record=pl.Series(record[: body.height]))
        .group_by("_record", maintain_order=True)
        .agg(pl.col("line").first(), pl.col("text").str.join("\n"))
        .drop("_record")
    )
    return body, tail


def iter_csv_blocks(
    path: str | Path,
    wanted: Mapping[str, Sequence[str]],
    *,
    optional: Sequence[str] = (),
    delimiter: str = ",",
    span: Span | None = None,
    limits: Limits | None = None,
) -> Iterator[CsvBlock]:
    """Yield CSV blocks of `path` (or of one `span` of it) with the wanted columns extracted by header name.

    A quoted field may span lines (the record keeps its first line's number); a record left open at the end
    of the file, or one longer than the record limit, is a block of its own with the reason set.
    """
    limits = limits or Limits()
    header = read_header(path, delimiter, limits)
    positions = resolve_columns(path, header, wanted, optional, limits)
    width = len(header)
    absent = [pl.lit(None, pl.String).alias(name) for name in wanted if name not in positions]
    pending = pl.DataFrame(schema={"line": pl.Int64, "text": pl.String})

    def rejected(line: int, text: str, reason: str) -> CsvBlock:
        frame = pl.DataFrame({"line": [line], "text": [text], "reason": [reason]}).with_columns(
            *(pl.lit(None, pl.String).alias(name) for name in wanted)
        )
        return CsvBlock(frame, pl.col("text"), [], 0)

    for piece in iter_byte_blocks(path, skip=1, span=span, limits=limits):
        if isinstance(piece, Oversized):
            if pending.height:
                yield rejected(pending["line"][0], pending["text"][0][:SAMPLE_BYTES], UNTERMINATED)
                pending = pending.clear()
            yield rejected(
                piece.line, piece.sample, f"record longer than {limits.max_record_bytes} bytes ({piece.size:,} bytes)"
            )
            continue
        first, data, count = piece
        fast = None if pending.height else _fast_block(data, first, count, width, delimiter)
        if fast is not None:
            padded = b" " in data or (b"\t" in data and delimiter != "\t")
            frame = fast.with_columns(
                reason=pl.lit(None, pl.String),
                **{
                    name: pl.col(f"_c{pos}").str.strip_chars() if padded else pl.col(f"_c{pos}")
                    for name, pos in positions.items()
                },
            ).with_columns(absent)
            raw = pl.concat_str([pl.col(f"_c{i}").fill_null("") for i in range(width)], separator=delimiter)
            yield CsvBlock(frame, raw, [], 0)
            continue
        block = line_block(data, first)
        records, pending = _join_quoted(block.lines, pending)
        if pending.height and pending["text"].str.len_bytes().sum() > limits.max_record_bytes:
            yield rejected(
                pending["line"][0],
                pending["text"][0][:SAMPLE_BYTES],
                f"{UNTERMINATED} longer than {limits.max_record_bytes} bytes",
            )
            pending = pending.clear()
        blank = pl.col("text").str.strip_chars() == ""
        lines = records.filter(~blank)
        split = split_fields(lines, delimiter).with_columns(nfields=pl.col("fields").list.len())
        frame = (
            split.with_columns(
                reason=pl.when(pl.col("nfields") != width)
                .then(pl.format("expected {} fields, found {}", pl.lit(width), pl.col("nfields")))
                .otherwise(pl.lit(None, pl.String)),
                **{
                    name: pl.col("fields").list.get(pos, null_on_oob=True).str.strip_chars()
                    for name, pos in positions.items()
                },
            )
            .drop("fields", "nfields")
            .with_columns(absent)
        )
        yield CsvBlock(frame, pl.col("text"), block.bad_utf8, records.height - lines.height)
    if pending.height:
        yield rejected(pending["line"][0], "\n".join(pending["text"])[:SAMPLE_BYTES], UNTERMINATED)

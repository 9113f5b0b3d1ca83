"""Stream a text file as blocks of numbered lines, with memory bounded by the block size."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from ingest.sources.limits import Limits
from lake import storage

BLOCK_BYTES = 16 << 20


class SourceError(ValueError):
    """A file that cannot be read at all (missing, unreadable, no usable header)."""


@dataclass(frozen=True)
class Span:
    """Bytes [start, end) of an uncompressed text file, whole lines, the first of them line `first_line`."""

    start: int
    end: int
    first_line: int


COMPRESSED = (".gz", ".bz2", ".zst", ".zstd", ".lz4", ".br")


def split_lines(path: str | Path, pieces: int, min_bytes: int = 64 << 20) -> list[Span]:
    """Spans of whole lines, about `pieces` of them and none under `min_bytes`, covering an uncompressed file.

    One pass counts the lines before each cut, so readers of a span number lines as a whole-file reader
    does. A compressed or small file is one span.
    """
    size = storage.info(path).size or 0
    step = max(min_bytes, -(-size // max(pieces, 1)))
    if str(path).lower().endswith(COMPRESSED) or pieces < 2 or size < 2 * min_bytes:
        return [Span(0, size, 1)]
    cuts: list[tuple[int, int]] = [(0, 1)]
    target, offset, lines = step, 0, 0
    with storage.open_input(path) as fh:
        while target < size and (data := fh.read(BLOCK_BYTES)):
            while target < offset + len(data):
                at = data.find(b"\n", max(target - offset, 0))
                if at < 0:
                    break
                cut = offset + at + 1
                if cut < size:
                    cuts.append((cut, lines + count_byte(data[: at + 1], 10) + 1))
                target = cut + step
            lines += count_byte(data, 10)
            offset += len(data)
    ends = [c for c, _ in cuts[1:]] + [size]
    return [Span(start, end, first) for (start, first), end in zip(cuts, ends, strict=True)]


@dataclass(frozen=True)
class LineBlock:
    """Consecutive lines of one file: `lines` has columns `line` (1-based number) and `text`.

    Lines that are not valid UTF-8 are left out of `lines` and listed in `bad_utf8` as
    (line number, text with the bad bytes escaped).
    """

    lines: pl.DataFrame
    bad_utf8: list[tuple[int, str]]


class RejectedFile(SourceError):
    """A file quarantined whole (a decompression bomb): its rows are dropped and `reason` is recorded."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass(frozen=True)
class Oversized:
    """A line longer than the record limit, read past in bounded memory: its number, its start, its size."""

    line: int
    sample: str
    size: int


SAMPLE_BYTES = 512


class BoundedStream(io.RawIOBase):
    """A (decompressing) input stream that names its file in every error and refuses to inflate past the
    limits: a compressed file that grows beyond `max_inflate_ratio` times its size or `max_inflated_bytes`
    raises RejectedFile."""

    def __init__(self, stream: pa.NativeFile, path: str | Path, limits: Limits):
        super().__init__()
        self.stream, self.path, self.limits = stream, path, limits
        self.compressed = storage.info(path).size if str(path).lower().endswith(COMPRESSED) else None
        self.total = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.stream.read(size if size is not None and size >= 0 else None)
        except (OSError, pa.ArrowException, EOFError) as exc:
            raise SourceError(f"cannot read {self.path}: {exc}") from exc
        self.total += len(data)
        if self.compressed is not None:
            limits = self.limits
            if self.total > limits.max_inflated_bytes:
                raise RejectedFile(self.path, f"inflates past {limits.max_inflated_bytes:,} bytes; file skipped")
            if self.total > limits.ratio_floor and self.total > limits.max_inflate_ratio * max(self.compressed, 1):
                raise RejectedFile(
                    self.path,
                    f"inflates more than {limits.max_inflate_ratio}x its compressed size "
                    f"({self.compressed:,} bytes); file skipped",
                )
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def open_stream(path: str | Path, limits: Limits | None = None) -> BoundedStream:
    """An input stream over `path` (local or an object-store URI), decompressing .gz/.bz2/.zst by extension,
    bounded by `limits`; a clear error naming the file otherwise."""
    try:
        return BoundedStream(storage.open_stream(path), path, limits or Limits())
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from exc


def count_byte(data: bytes, byte: int) -> int:
    """How many times `byte` occurs in `data` (vectorised; several times faster than bytes.count)."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == byte))


def line_block(data: bytes, first_line: int) -> LineBlock:
    """Numbered lines of a block of whole lines; lines that are not UTF-8 set aside."""
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if not len(ends) or ends[-1] != len(buf) - 1:
        ends = np.append(ends, len(buf))
    offsets = np.concatenate([[0], ends + 1]).astype(np.int64)
    offsets[-1] = min(offsets[-1], len(buf))
    n = len(offsets) - 1
    binary = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    numbers = np.arange(first_line, first_line + n, dtype=np.int64)
    bad: list[tuple[int, str]] = []
    try:
        text = binary.cast(pa.large_string())
    except pa.ArrowInvalid:
        keep = np.ones(n, dtype=bool)
        for i in range(n):
            raw = data[offsets[i] : offsets[i + 1]]
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                keep[i] = False
                bad.append((int(numbers[i]), raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")))
        binary, numbers = binary.filter(pa.array(keep)), numbers[keep]
        text = binary.cast(pa.large_string())
    frame = pl.DataFrame({"line": numbers, "text": pl.Series(text)}).with_columns(
        pl.col("text").str.strip_chars_end("\r\n")
    )
    return LineBlock(frame, bad)


def _split_long(data: bytes, first: int, limit: int) -> list[tuple[int, bytes, int] | Oversized]:
    """A block of whole lines with any line longer than `limit` taken out as Oversized."""
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if not len(ends) or ends[-1] != len(buf) - 1:
        ends = np.append(ends, len(buf))
    starts = np.concatenate([[0], ends[:-1] + 1])
    long = np.flatnonzero(ends - starts > limit)
    if not len(long):
        return [(first, data, len(ends))]
    out: list[tuple[int, bytes, int] | Oversized] = []
    done = 0
    for i in long.tolist():
        if i > done:
            out.append((first + done, data[starts[done] : starts[i]], i - done))
        out.append(
            Oversized(
                first + i,
                data[starts[i] : starts[i] + SAMPLE_BYTES].decode("utf-8", "replace"),
                int(ends[i] - starts[i]),
            )
        )
        done = i + 1
    if done < len(ends):
        out.append((first + done, data[starts[done] :], len(ends) - done))
    return out


def iter_byte_blocks(
    path: str | Path,
    block_bytes: int = BLOCK_BYTES,
    skip: int = 0,
    span: Span | None = None,
    limits: Limits | None = None,
) -> Iterator[tuple[int, bytes, int] | Oversized]:
    """Yield (number of the first line, whole lines as bytes, number of lines) blocks of about `block_bytes`,
    and an Oversized for each line longer than the record limit (read past without keeping it).

    Memory and time stay linear in the block size whatever the file holds (a file without newlines too).
    With a `span`, only its bytes are read (and `skip` applies only to the span at the start of the file).
    """
    limits = limits or Limits()
    limit = limits.max_record_bytes
    next_line = 1 if span is None else span.first_line
    skip = skip if span is None or span.start == 0 else 0
    remaining = None if span is None else span.end - span.start
    carry: list[bytes] = []
    carry_len = 0
    skipping: list = []  # [size so far, sample] of an oversized line being read past
    with open_stream(path, limits) if span is None else _seek(path, span.start, limits) as stream:
        while True:
            chunk = stream.read(block_bytes if remaining is None else min(block_bytes, remaining))
            eof = not chunk
            if remaining is not None:
                remaining -= len(chunk)
            pieces: list[tuple[int, bytes, int] | Oversized] = []
            if skipping:
                at = chunk.find(b"\n")
                if at < 0 and not eof:
                    skipping[0] += len(chunk)
                    continue
                pieces.append(Oversized(next_line, skipping[1], skipping[0] + max(at, 0)))
                skipping.clear()
                chunk = chunk[at + 1 :] if at >= 0 else b""
            if chunk:
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:
                    if carry_len + len(chunk) > limit:
                        head = b"".join([*carry, chunk[:SAMPLE_BYTES]])[:SAMPLE_BYTES]
                        skipping[:] = [carry_len + len(chunk), head.decode("utf-8", "replace")]
                        carry, carry_len = [], 0
                    else:
                        carry.append(chunk)
                        carry_len += len(chunk)
                    if not pieces:
                        continue
                    data = b""
                else:
                    head_end = chunk.find(b"\n") + 1
                    if carry and carry_len + head_end - 1 > limit:
                        sample = b"".join([*carry, chunk[:SAMPLE_BYTES]])[:SAMPLE_BYTES]
                        pieces.append(
                            Oversized(
                                next_line + len(pieces), sample.decode("utf-8", "replace"), carry_len + head_end - 1
                            )
                        )
                        data = chunk[head_end:cut]
                    elif carry:
                        data = b"".join([*carry, memoryview(chunk)[:cut]])
                    else:
                        data = chunk if cut == len(chunk) else chunk[:cut]
                    carry = [chunk[cut:]] if cut < len(chunk) else []
                    carry_len = len(chunk) - cut
            elif eof:
                data, carry, carry_len = b"".join(carry), [], 0
            else:
                data = b""
            lines = count_byte(data, 10) + (0 if not data or data.endswith(b"\n") else 1)
            if data:
                first = next_line + len(pieces)
                pieces += _split_long(data, first, limit) if len(data) > limit else [(first, data, lines)]
            for piece in pieces:
                if isinstance(piece, Oversized):
                    if skip:
                        raise SourceError(f"{path}: the header line is longer than {limit:,} bytes")
                    next_line = piece.line + 1
                    yield piece
                    continue
                first, data, lines = piece
                while skip and data:
                    cut = data.find(b"\n") + 1 or len(data)
                    data, skip, first, lines = data[cut:], skip - 1, first + 1, lines - 1
                next_line = first + lines
                if data:
                    yield first, data, lines
            if eof:
                return


def _seek(path: str | Path, offset: int, limits: Limits) -> BoundedStream:
    try:
        handle = storage.open_input(path)
        handle.seek(offset)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc}") from exc
    return BoundedStream(handle, path, limits)


def iter_line_blocks(path: str | Path, block_bytes: int = BLOCK_BYTES, skip: int = 0) -> Iterator[LineBlock]:
    """Yield the lines of `path` in blocks of about `block_bytes`, skipping the first `skip` lines.

    Lines longer than the record limit come as a block of their own with the line's first bytes."""
    for piece in iter_byte_blocks(path, block_bytes, skip):
        if isinstance(piece, Oversized):
            yield LineBlock(pl.DataFrame({"line": [piece.line], "text": [piece.sample]}), [])
        else:
            yield line_block(piece[1], piece[0])


def check_columns(path: str | Path, count: int, limits: Limits | None) -> None:
    """Fail a file whose header or schema has more than `max_columns` columns, naming the file."""
    limit = (limits or Limits()).max_columns
    if count > limit:
        raise SourceError(
            f"{path}: the header has {count:,} columns, over the limit of {limit:,} (SIDFORGE_MAX_COLUMNS); "
            "the file is not read"
        )


def shown(names: Sequence[str], at_most: int = 20) -> str:
    """A header for an error message: its first names, and how many more there are."""
    more = len(names) - at_most
    return str(list(names[:at_most]))[:-1] + (f", ... {more:,} more]" if more > 0 else "]")


def read_header(path: str | Path, delimiter: str = ",", limits: Limits | None = None) -> list[str]:
    """The column names on the first line of `path`; a SourceError naming the file when unreadable, longer
    than the record limit, or naming a column twice."""
    limit = (limits or Limits()).max_record_bytes
    parts: list[bytes] = []
    size = 0
    with open_stream(path, limits) as stream:
        while True:
            chunk = stream.read(1 << 16)
            at = chunk.find(b"\n")
            parts.append(chunk if at < 0 else chunk[:at])
            size += len(parts[-1])
            if size > limit:
                raise SourceError(f"{path}: the header line is longer than {limit:,} bytes")
            if at >= 0 or not chunk:
                break
    try:
        line = b"".join(parts).decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: the header line is not valid UTF-8") from exc
    if not line.strip():
        raise SourceError(f"{path}: the file is empty or its first line is blank; expected a header")
    check_columns(path, line.count(delimiter) + 1, limits)  # an upper bound: quoted fields may hold delimiters
    names = [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
    repeated = sorted(n for n, times in Counter(n.lower() for n in names).items() if times > 1)
    if repeated:
        raise SourceError(
            f"{path}: duplicate column(s) {repeated[:20]} in header {shown(names)}; each column must appear once"
        )
    return names


def split_fields(lines: pl.DataFrame, delimiter: str = ",") -> pl.DataFrame:
    """Add a `fields` list column; lines with quotes are parsed as CSV, the rest split on `delimiter`."""
    quoted = pl.col("text").str.contains('"', literal=True)
    plain = lines.filter(~quoted).with_columns(fields=pl.col("text").str.split(delimiter))
    slow = lines.filter(quoted)
    if not slow.height:
        return plain
    parsed = [next(csv.reader([t], delimiter=delimiter), []) for t in slow["text"]]
    slow = slow.with_columns(fields=pl.Series(parsed, dtype=pl.List(pl.String)))
    return pl.concat([plain, slow]).sort("line")

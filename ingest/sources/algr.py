"""Readers for the published AL-GR file formats (Hugging Face datasets AL-GR/*), as validated blocks.

- Origin-Sequence-Data CSV: `user_history` (';'-separated, newest first), `target_item` (';'-separated).
- Item-EMB CSV: `base62_string`, `feature` (base64 of little-endian float32[512]).
- Item-SID CSV: `base62_string` (or `item_id`), `codebook_lv1`, `codebook_lv2`, `codebook_lv3`.
- GR instruction data (`id, system, user, answer`, tab- or comma-separated): items as `C{c1}C{c2}C{c3}`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from ingest.sources.csvblocks import iter_csv_blocks
from ingest.sources.limits import Limits
from ingest.sources.lines import SourceError, Span, open_stream, read_header
from ingest.sources.records import INVALID_UTF8, Parsed, reject_frame, split_checked, utf8_rejects
from lake import storage
from lake.catalog import today
from sid_index.codec import ALGR_CODEBOOK_SIZE, parse_tokens, render_expr

ALGR_BASE_DS = "2025-01-01"
EMBEDDING_DIM = 512
SYSTEM_PROMPT = (
    "You are a recommendation system. Based on the user's historical behavior, predict the next items, as semantic IDs."
)
USER_PREFIX = "The user's historical behavior sequence is: "
_STAGE = re.compile(r"(?:^|[^a-z0-9])s(\d+)(?:[^0-9]|$)", re.IGNORECASE)
GR_BLOCK_ROWS = 100_000


def stage_and_split(path: str | Path) -> tuple[int, str]:
    """AL-GR stage number (s1, s2, ...) and split ('test' when the path says so) from a file path."""
    text = "/".join(str(path).rstrip("/").split("/")[-2:]).lower()
    match = _STAGE.search(storage.name_of(path).lower()) or _STAGE.search(text)
    stage = int(match.group(1)) if match else 1
    return stage, "test" if "test" in text else "train"


def stage_ds(base_ds: str, stage: int, split: str) -> str:
    """Partition day of a stage: stage n trains on day base+n-1, its test users come from the day after."""
    day = dt.date.fromisoformat(base_ds) + dt.timedelta(days=stage - 1 + (split == "test"))
    return day.isoformat()


def read_sequences(
    path: str | Path, *, ds: str | None = None, span: Span | None = None, limits: Limits | None = None
) -> Iterator[Parsed]:
    """Origin-Sequence-Data CSV as `user_sequences` rows, history reversed to oldest first."""
    stage, split = stage_and_split(path)
    day = stage_ds(ds or ALGR_BASE_DS, stage, split)
    wanted = {"user_history": ("user_history",), "target_item": ("target_item",), "user_id": ("user_id",)}
    for block in iter_csv_blocks(path, wanted, optional=("user_id",), span=span, limits=limits):
        frame = block.frame.with_columns(
            history=pl.col("user_history").fill_null("").str.split(";").list.reverse(),
            target=pl.col("target_item").fill_null("").str.split(";"),
        ).with_columns(
            history=pl.when(pl.col("user_history").fill_null("") == "")
            .then(pl.lit([], pl.List(pl.String)))
            .otherwise(pl.col("history").list.eval(pl.element().str.strip_chars())),
            target=pl.col("target").list.eval(pl.element().str.strip_chars()),
        )
        checks: list[tuple[pl.Expr, pl.Expr | str]] = [
            (pl.col("reason").is_not_null(), pl.col("reason")),
            (pl.col("target_item").fill_null("") == "", "empty target_item"),
            (pl.col("target").list.eval(pl.element() == "").list.any(), "empty item id in target_item"),
            (pl.col("history").list.eval(pl.element() == "").list.any(), "empty item id in user_history"),
        ]
        frame = frame.with_columns(
            user_id=pl.coalesce(
                pl.col("user_id").replace("", None), pl.format("{}:{}", pl.lit(storage.name_of(path)), pl.col("line"))
            ),
            stage=pl.lit(stage, pl.Int16),
            id_space=pl.lit("item"),
            source=pl.lit(storage.name_of(path)),
            ds=pl.lit(day),
            split=pl.lit(split),
        )
        rows, rejects = split_checked(
            frame,
            checks=checks,
            table_name="user_sequences",
            source=path,
            raw=block.raw,
            ds=day,
            columns=_SEQUENCE_COLUMNS,
        )
        bad = utf8_rejects(path, block.bad_utf8, day)
        yield Parsed("user_sequences", rows, pl.concat([rejects, bad]), block.blank)


_SEQUENCE_COLUMNS = ["user_id", "history", "target", "stage", "id_space", "source", "line", "ds", "split"]


def read_item_embeddings(
    path: str | Path,
    *,
    model: str,
    dim: int = EMBEDDING_DIM,
    ds: str | None = None,
    span: Span | None = None,
    limits: Limits | None = None,
) -> Iterator[Parsed]:
    """Item-EMB CSV as `item_embeddings` rows: base64 float32 vectors of length `dim`, finite."""
    day = ds or today()
    wanted = {"item_id": ("base62_string", "item_id"), "feature": ("feature", "embedding")}
    nbytes = 4 * dim
    for block in iter_csv_blocks(path, wanted, span=span, limits=limits):
        frame = block.frame.with_columns(blob=pl.col("feature").str.decode("base64", strict=False))
        frame = frame.with_columns(nbytes=pl.col("blob").bin.size())
        aligned = frame.filter(pl.col("reason").is_null() & (pl.col("nbytes") == nbytes))
        finite = pl.Series("finite", [], pl.Boolean)
        vectors = np.zeros((0, dim), dtype=np.float32)
        if aligned.height:
            vectors = _vectors(aligned["blob"], dim)
            finite = pl.Series("finite", np.isfinite(vectors).all(axis=1))
        frame = frame.join(aligned.select("line").with_columns(finite), on="line", how="left")
        checks: list[tuple[pl.Expr, pl.Expr | str]] = [
            (pl.col("reason").is_not_null(), pl.col("reason")),
            (pl.col("item_id").fill_null("") == "", "empty item id"),
            (pl.col("blob").is_null(), "feature is not valid base64"),
            (
                pl.col("nbytes") != nbytes,
                pl.format(
                    "vector has {} bytes ({} float32 values), expected {} values",
                    pl.col("nbytes"),
                    pl.col("nbytes") / 4,
                    pl.lit(dim),
                ),
            ),
            (~pl.col("finite"), "vector has NaN or infinite values"),
        ]
        rows, rejects = split_checked(
            frame,
            checks=checks,
            table_name="item_embeddings",
            source=path,
            raw=_shorten(block.raw),
            ds=day,
            columns=["item_id", "line"],
        )
        keep = aligned["line"].is_in(rows["line"].implode()).to_numpy()
        good_vectors = vectors[keep] if aligned.height else vectors
        rows = rows.with_columns(
            embedding=pl.Series(_fixed_list(good_vectors)).cast(pl.List(pl.Float32)),
            dim=pl.lit(dim, pl.Int32),
            modalities=pl.lit("precomputed"),
            content_hash=pl.lit(None, pl.String),
            source=pl.lit(storage.name_of(path)),
            model=pl.lit(model),
        )
        bad = utf8_rejects(path, block.bad_utf8, day)
        yield Parsed("item_embeddings", rows, pl.concat([rejects, bad]), block.blank)


def _shorten(text: pl.Expr, limit: int = 512) -> pl.Expr:
    """Raw text kept in quarantine, cut to `limit` characters with a marker (vectors are long)."""
    return (
        pl.when(text.str.len_chars() > limit)
        .then(pl.format("{}…[{} chars]", text.str.slice(0, limit), text.str.len_chars()))
        .otherwise(text)
    )


def _vectors(blobs: pl.Series, dim: int) -> np.ndarray:
    """Decode equal-length little-endian float32 blobs into an (n, dim) array without a Python loop."""
    arr = blobs.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_binary())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    values = data.view("<f4").reshape(len(arr), dim)
    return values.astype(np.float32, copy=True) if sys.byteorder == "little" else values.astype("=f4")


def _fixed_list(vectors: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1])


def read_item_sids(
    path: str | Path,
    *,
    build_id: str,
    codebook_size: int = ALGR_CODEBOOK_SIZE,
    ds: str | None = None,
    span: Span | None = None,
    limits: Limits | None = None,
) -> Iterator[Parsed]:
    """Item-SID CSV as `item_sids` rows: every `codebook_lv*` code an integer in [0, codebook_size)."""
    day = ds or today()
    header = [h.lower() for h in read_header(path, limits=limits)]
    levels = sorted((h for h in header if re.fullmatch(r"codebook_lv\d+", h)), key=lambda h: int(h[11:]))
    if not levels:
        raise SourceError(f"{path}: no codebook_lv1.. columns in header {header}")
    wanted = {"item_id": ("base62_string", "item_id"), **{lv: (lv,) for lv in levels}}
    for block in iter_csv_blocks(path, wanted, span=span, limits=limits):
        codes = [pl.col(lv).cast(pl.Int32, strict=False) for lv in levels]
        frame = block.frame.with_columns(codes=pl.concat_list(codes))
        checks: list[tuple[pl.Expr, pl.Expr | str]] = [
            (pl.col("reason").is_not_null(), pl.col("reason")),
            (pl.col("item_id").fill_null("") == "", "empty item id"),
        ]
        for lv in levels:
            col = pl.col(lv).fill_null("")
            checks += [
                (col == "", f"missing code for {lv}"),
                (pl.col(lv).cast(pl.Int32, strict=False).is_null(), pl.format(f"{lv} '{{}}' is not an integer", col)),
                (
                    ~pl.col(lv).cast(pl.Int32, strict=False).is_between(0, codebook_size - 1),
                    pl.format(f"{lv} {{}} outside [0, {codebook_size})", col),
                ),
            ]
        rows, rejects = split_checked(
            frame,
            checks=checks,
            table_name="item_sids",
            source=path,
            raw=block.raw,
            ds=day,
            columns=["item_id", "codes", "line"],
        )
        rows = rows.with_columns(
            codes_raw=pl.col("codes"),
            sid=render_expr(pl.col("codes"), [codebook_size] * len(levels)),
            source=pl.lit(storage.name_of(path)),
            build_id=pl.lit(build_id),
        )
        bad = utf8_rejects(path, block.bad_utf8, day)
        yield Parsed("item_sids", rows, pl.concat([rejects, bad]), block.blank)


def read_gr_instructions(
    path: str | Path, *, ds: str | None = None, levels: int = 3, limits: Limits | None = None
) -> Iterator[Parsed]:
    """GR instruction data (`[id,] system, user, answer`) as `user_sequences` in SID space.

    Items are groups of `levels` C-tokens, level l's token within AL-GR's `[l * 8192, (l + 1) * 8192)`; the
    history comes from `user`, the target from `answer`. A record longer than the limit fails the file.
    """
    limits = limits or Limits()
    stage, split = stage_and_split(path)
    day = stage_ds(ds or ALGR_BASE_DS, stage, split)
    delimiter = "\t" if len(read_header(path, "\t", limits)) > 1 else ","
    header = [h.lower() for h in read_header(path, delimiter, limits)]
    for col in ("user", "answer"):
        if col not in header:
            raise SourceError(f"{path}: no {col!r} column in header {header}; expected [id,] system, user, answer")
    rows: list[dict] = []
    bad: list[tuple[int | None, str, str]] = []
    blank = 0
    csv.field_size_limit(limits.max_record_bytes)
    with open_stream(path, limits) as stream, _text(stream) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader)
        start = reader.line_num + 1
        for record in _records(reader, path, limits):
            line = start
            start = reader.line_num + 1
            raw = delimiter.join(record)
            if not any(f.strip() for f in record):
                blank += 1
                continue
            try:
                raw.encode("utf-8")
            except UnicodeEncodeError:
                text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                bad.append((line, text[:512], INVALID_UTF8))
                continue
            if len(record) != len(header):
                bad.append((line, raw, f"expected {len(header)} fields, found {len(record)}"))
                continue
            fields = dict(zip(header, record, strict=True))
            history, target = _sid_items(fields["user"], levels), _sid_items(fields["answer"], levels)
            problem = next(
                ((name, v) for name, v in (("user", history), ("answer", target)) if isinstance(v, str)), None
            )
            if problem is not None:
                bad.append((line, raw[:512], f"{problem[0]}: {problem[1]}"))
                continue
            if not target:
                bad.append((line, raw[:512], "answer has no C-tokens"))
                continue
            rows.append(
                {
                    "user_id": fields.get("id") or f"{storage.name_of(path)}:{line}",
                    "history": history,
                    "target": target,
                    "line": line,
                }
            )
            if len(rows) >= GR_BLOCK_ROWS:
                yield _gr_block(rows, path, stage, split, day, [], 0)
                rows = []
    yield _gr_block(rows, path, stage, split, day, bad, blank)


def _records(reader, path: str | Path, limits: Limits) -> Iterator[list[str]]:
    """The csv reader's records; a record past the size limit fails the file naming it and the line."""
    try:
        yield from reader
    except csv.Error as exc:
        raise SourceError(
            f"{path}: line {reader.line_num}: {exc} (the record limit is {limits.max_record_bytes:,} bytes)"
        ) from exc


def _sid_items(text: str, levels: int, stride: int = ALGR_CODEBOOK_SIZE) -> list[str] | str:
    """Items as C-token strings, or the reason they are not valid AL-GR tokens (count, level range)."""
    tokens = parse_tokens(text)
    if len(tokens) % levels:
        return f"a C-token count that is not a multiple of {levels}"
    for i, token in enumerate(tokens):
        level = i % levels
        if len(token) > 12 or not level * stride <= int(token) < (level + 1) * stride:
            return (
                f"item {i // levels + 1}: level {level + 1} token C{token[:24]} outside "
                f"[{level * stride}, {(level + 1) * stride})"
            )
    return ["".join(f"C{t}" for t in tokens[i : i + levels]) for i in range(0, len(tokens), levels)]


def _gr_block(
    rows: list[dict],
    path: str | Path,
    stage: int,
    split: str,
    day: str,
    bad: list[tuple[int | None, str, str]],
    blank: int,
) -> Parsed:
    frame = pl.DataFrame(
        rows,
        schema={"user_id": pl.String, "history": pl.List(pl.String), "target": pl.List(pl.String), "line": pl.Int64},
    )
    frame = frame.with_columns(
        stage=pl.lit(stage, pl.Int16),
        id_space=pl.lit("sid"),
        source=pl.lit(storage.name_of(path)),
        ds=pl.lit(day),
        split=pl.lit(split),
    )
    return Parsed("user_sequences", frame.select(_SEQUENCE_COLUMNS), reject_frame(path, bad, day), blank)


def _text(stream: pa.NativeFile) -> io.TextIOWrapper:
    """A text view for the csv module; undecodable bytes survive as surrogates to be quarantined."""
    return io.TextIOWrapper(io.BufferedReader(stream), encoding="utf-8", errors="surrogateescape", newline="")

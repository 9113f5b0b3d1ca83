"""Semantic-ID codes as integers and tokens, the one place for the token layout: mixed-radix keys, token offsets,
AL-GR `C{id}` strings (rendered and parsed), and the fixed-stride layout of AL-GR's own files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

TOKEN = r"C(\d+)"  # one SID token in text: its id as the group
TOKEN_RE = re.compile(TOKEN)
ALGR_CODEBOOK_SIZE = 8192  # AL-GR's codebooks: 8192 codes per level, level l's tokens start at l x 8192


def offsets(sizes: Sequence[int]) -> list[int]:
    """Token offset of each level: the running sum of the codebook sizes before it."""
    return [0, *np.cumsum(sizes)[:-1].tolist()]


def vocabulary_size(sizes: Sequence[int]) -> int:
    """Number of SID tokens over all levels."""
    return int(sum(sizes))


def token_ids(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Token id of every code: code + offset of its level."""
    return codes.astype(np.int64) + np.asarray(offsets(sizes), dtype=np.int64)


def render(codes: np.ndarray, sizes: Sequence[int]) -> list[str]:
    """AL-GR token strings, `C{t1}C{t2}C{t3}` with t = code + level offset."""
    tokens = token_ids(codes, sizes)
    return ["".join(f"C{t}" for t in row) for row in tokens.tolist()]


def code_lists(codes: np.ndarray) -> pl.Series:
    """An (n, L) code matrix as a Polars List(Int32) column, without a Python object per row."""
    flat = pl.Series(np.ascontiguousarray(codes, dtype=np.int32).reshape(-1))
    return flat.reshape((len(codes), codes.shape[1])).cast(pl.List(pl.Int32))


def render_expr(codes: pl.Expr, sizes: Sequence[int]) -> pl.Expr:
    """The same token strings as `render`, as a Polars expression over a list column of codes."""
    parts: list[pl.Expr] = []
    for level, off in enumerate(offsets(sizes)):
        parts += [pl.lit("C"), (codes.list.get(level) + off).cast(pl.String)]
    return pl.concat_str(parts)


def parse_tokens(text: str) -> list[str]:
    """The token ids (as digit strings) of every `C{id}` token in `text`, in order."""
    return TOKEN_RE.findall(text)


@dataclass(frozen=True)
class TokenLayout:
    """A fixed-stride layout: the token of code c at level l (0-based) is `C{c + l * stride}` (AL-GR's files)."""

    sizes: tuple[int, ...]
    stride: int = ALGR_CODEBOOK_SIZE

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"--token-stride must be a positive integer, got {self.stride}")
        too_big = [(level + 1, size) for level, size in enumerate(self.sizes) if size > self.stride]
        if too_big:
            detail = ", ".join(f"level {lv} has {size} codes" for lv, size in too_big)
            raise ValueError(
                f"{detail}: more than the token stride {self.stride}, so its tokens would run into "
                f"the next level's; pass a larger --token-stride (FORGE's tools read 8192)"
            )

    @property
    def level_sizes(self) -> list[int]:
        """The sizes that give this layout's offsets to `render`: the stride at every level."""
        return [self.stride] * len(self.sizes)

    def as_dict(self) -> dict:
        """What an export manifest records."""
        return {
            "layout": "algr" if self.stride == ALGR_CODEBOOK_SIZE else "custom-stride",
            "stride": self.stride,
            "levels": len(self.sizes),
            "sizes": list(self.sizes),
            "token": "C{code + level * stride}",
            "token_ranges": [[lv * self.stride, lv * self.stride + s - 1] for lv, s in enumerate(self.sizes)],
        }


def prefix_sets(tokens: np.ndarray, vocabulary: int) -> dict[int, np.ndarray]:
    """Sorted keys of every distinct prefix of each length of the SIDs `tokens` (n, L token ids): length l holds
    one int64 per prefix of l tokens, packed in base `vocabulary` (what constrained decoding looks up)."""
    prefixes, key = {}, np.zeros(len(tokens), dtype=np.int64)
    for level in range(tokens.shape[1]):
        key = key * vocabulary + tokens[:, level]
        prefixes[level + 1] = np.unique(key)
    return prefixes


def keys(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """One int64 per SID (mixed radix over the level sizes) for exact vectorised counting."""
    if float(np.prod(np.asarray(sizes, dtype=np.float64))) >= 2**63:
        raise ValueError(f"codebook sizes {list(sizes)} do not fit a 64-bit SID key")
    out = np.zeros(len(codes), dtype=np.int64)
    for level, size in enumerate(sizes):
        out = out * size + codes[:, level].astype(np.int64)
    return out


def prefix_keys(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Keys of the SID prefixes (all levels but the last)."""
    return keys(codes[:, :-1], sizes[:-1]) if len(sizes) > 1 else np.zeros(len(codes), dtype=np.int64)


def auto_sizes(n_items: int, levels: int = 3, largest: int = 8192) -> list[int]:
    """Codebook sizes for a catalogue of `n_items`: a power of two near 2·n^(1/levels), at most `largest`."""
    per_level = max(2.0, 2 * n_items ** (1 / levels))
    return [int(min(largest, 2 ** int(np.ceil(np.log2(per_level)))))] * levels

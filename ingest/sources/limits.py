"""Bounds on what one input may cost: record size, decompression, and which files an item may point at."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MiB = 1 << 20


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class Limits:
    """Per-input bounds.

    A record longer than `max_record_bytes` is quarantined (read past in bounded memory); a compressed file
    that inflates beyond `max_inflate_ratio` times its size (once past 64 MiB) or past `max_inflated_bytes`
    is quarantined whole. A header (CSV) or schema (Parquet) wider than `max_columns` fails the file. Item
    images are read only inside the items file's folder or `image_roots`, and remote (http/https) images are
    fetched only with `fetch_images`.
    """

    max_record_bytes: int = 16 * MiB
    max_columns: int = 10_000
    max_inflate_ratio: int = 100
    max_inflated_bytes: int = 64 << 30
    image_roots: tuple[str, ...] = ()
    fetch_images: bool = False
    ratio_floor: int = 64 * MiB

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Limits:
        """Limits set by SIDFORGE_MAX_RECORD_BYTES, SIDFORGE_MAX_COLUMNS, SIDFORGE_MAX_INFLATE_RATIO,
        SIDFORGE_MAX_INFLATED_BYTES, SIDFORGE_IMAGE_ROOTS (an os.pathsep-separated list) and
        SIDFORGE_FETCH_IMAGES=1; defaults otherwise."""
        default = cls()
        return cls(
            max_record_bytes=_int(environ, "SIDFORGE_MAX_RECORD_BYTES", default.max_record_bytes),
            max_columns=_int(environ, "SIDFORGE_MAX_COLUMNS", default.max_columns),
            max_inflate_ratio=_int(environ, "SIDFORGE_MAX_INFLATE_RATIO", default.max_inflate_ratio),
            max_inflated_bytes=_int(environ, "SIDFORGE_MAX_INFLATED_BYTES", default.max_inflated_bytes),
            image_roots=tuple(p for p in environ.get("SIDFORGE_IMAGE_ROOTS", "").split(os.pathsep) if p),
            fetch_images=environ.get("SIDFORGE_FETCH_IMAGES") == "1",
        )

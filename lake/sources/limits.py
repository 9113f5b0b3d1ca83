"""Bounds on what one input may cost: record size, decompression, and which files an item may point at."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MiB = 1 << 20


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class Limits:
    """Per-input bounds (environment: SIDFORGE_MAX_RECORD_BYTES, SIDFORGE_MAX_INFLATE_RATIO,
    SIDFORGE_MAX_INFLATED_BYTES, SIDFORGE_IMAGE_ROOTS as an os.pathsep-separated list).

    A record longer than `max_record_bytes` is quarantined (read past in bounded memory); a compressed file
    that inflates beyond `max_inflate_ratio` times its size (once past 64 MiB) or past `max_inflated_bytes`
    is quarantined whole. Item images are read only inside the items file's folder or `image_roots`.
    """

    max_record_bytes: int = field(default_factory=lambda: _env_int("SIDFORGE_MAX_RECORD_BYTES", 16 * MiB))
    max_inflate_ratio: int = field(default_factory=lambda: _env_int("SIDFORGE_MAX_INFLATE_RATIO", 100))
    max_inflated_bytes: int = field(default_factory=lambda: _env_int("SIDFORGE_MAX_INFLATED_BYTES", 64 << 30))
    image_roots: tuple[str, ...] = field(default_factory=lambda: tuple(
        p for p in os.environ.get("SIDFORGE_IMAGE_ROOTS", "").split(os.pathsep) if p))
    ratio_floor: int = 64 * MiB

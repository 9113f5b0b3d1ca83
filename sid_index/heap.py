"""Handing the C heap's free memory back to the operating system between batches.

glibc's malloc keeps freed blocks for reuse; numpy's and PyTorch's short-lived batch buffers, freed between
long-lived per-item arrays, leave holes it never returns, so a streaming pass would otherwise grow the resident
set by tens of bytes per item that no array uses.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_NAME = ctypes.util.find_library("c")
_TRIM = getattr(ctypes.CDLL(_NAME), "malloc_trim", None) if _NAME else None  # glibc only


def release_free_memory() -> None:
    """Return the C heap's free pages to the operating system (glibc's `malloc_trim`); a no-op elsewhere."""
    if _TRIM is not None:
        _TRIM(0)

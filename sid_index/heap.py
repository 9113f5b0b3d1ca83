"""Handing the C heap's free memory back to the operating system between batches.

glibc's malloc keeps freed blocks for reuse; numpy's and PyTorch's short-lived batch buffers, freed between
long-lived per-item arrays, leave holes it never returns, so a streaming pass would otherwise grow the resident
set by tens of bytes per item that no array uses.
"""

from __future__ import annotations

import ctypes


def _malloc_trim():
    """glibc's `malloc_trim` from the symbols already loaded in this process (no library search); None elsewhere."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except (OSError, TypeError):  # no dlopen(NULL) on this platform
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Return the C heap's free pages to the operating system (glibc's `malloc_trim`); a no-op elsewhere."""
    if _TRIM is not None:
        _TRIM(0)

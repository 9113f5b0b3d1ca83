"""Where rows came from: a stable key per input (format + normalised path) carried in the data files' names.

Every file an ingest writes holds the rows of one input only and is named `...-src<key>-...`, so that a
rerun of that input can remove exactly what it wrote before, in the same commit that adds the new rows.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SOURCE_FOLDER = "sidforge_src"  # staging folder level (`sidforge_src=<key>`) that names a file's input
_KEY = re.compile(r"(?:^|[-/])src([0-9a-f]{16})-")


def normalise(path: str | Path) -> Path:
    """The one spelling of an input path: absolute, symlinks and `..` resolved."""
    return Path(path).expanduser().resolve()


def source_key(fmt: str, path: str | Path) -> str:
    """16 hex digits naming an input: its format and normalised path."""
    return hashlib.sha256(f"{fmt}\n{normalise(path)}".encode()).hexdigest()[:16]


def key_of_file(path: str) -> str | None:
    """The input key in a data file's name, or None for a file that no keyed ingest wrote."""
    match = _KEY.search(path.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def fingerprint(path: Path) -> str:
    """A cheap content fingerprint (size, mtime, first and last MiB), recorded with every commit."""
    stat = path.stat()
    digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    with path.open("rb") as fh:
        digest.update(fh.read(1 << 20))
        if stat.st_size > 2 << 20:
            fh.seek(-(1 << 20), 2)
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:32]

"""Where rows came from: a stable key per source identity carried in the data files' names.

A source's identity is its format, its normalised path and its target: the partition values the call pins
(the model of embeddings, the build of SIDs, the day of `--ds`). Every file an ingest writes holds the rows of
one input only and is named `...-src<key>-...`, so that a rerun of that identity can remove exactly what it
wrote before, in the same commit that adds the new rows. A call without a target has the key of format and
path alone, the key every file had before targets were part of the identity.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from lake import storage

SOURCE_FOLDER = "sidforge_src"  # staging folder level (`sidforge_src=<key>`) that names a file's input
_KEY = re.compile(r"(?:^|[-/])src([0-9a-f]{16})-")


def source_key(fmt: str, path: str | Path, target: Mapping[str, str | None] | None = None) -> str:
    """16 hex digits naming a source identity: its format, normalised location (`storage.normalize`) and the
    partition values it writes to (`target`, e.g. `{"model": "m1"}`; none: the format and path alone)."""
    text = f"{fmt}\n{storage.normalize(path)}"
    if target:
        text += "\n" + "\n".join(f"{c}={v}" for c, v in sorted(target.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key_of_file(path: str) -> str | None:
    """The input key in a data file's name, or None for a file that no keyed ingest wrote."""
    match = _KEY.search(path.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def fingerprint(location: str | Path) -> str:
    """A cheap content fingerprint (size, modification time, first and last MiB) of a local or object-store
    file, recorded with every commit."""
    found = storage.info(location)
    size = found.size or 0
    digest = hashlib.sha256(f"{size}:{found.mtime_ns}".encode())
    with storage.open_input(location) as fh:
        digest.update(fh.read_at(min(size, 1 << 20), 0))
        if size > 2 << 20:
            digest.update(fh.read_at(1 << 20, size - (1 << 20)))
    return digest.hexdigest()[:32]

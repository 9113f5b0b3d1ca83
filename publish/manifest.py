"""A published version's manifest and checksums, read with pyarrow's filesystems alone (the shard reader's needs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lake import storage

MANIFEST = "manifest.json"


def sha256_of(location: str | Path, options: storage.Options = None) -> str:
    """Hex sha256 of a file (local or on an object store), read in 1 MiB chunks."""
    fs, path = storage.filesystem(location, options)
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(location: str | Path, options: storage.Options = None) -> dict:
    """The manifest of a published version; a clear error when the version was never completed."""
    file = storage.join(location, MANIFEST)
    if not storage.is_file(file, options):
        raise FileNotFoundError(
            f"{location} has no {MANIFEST}: it is not a published version (a crash before the manifest, or the "
            "wrong path)"
        )
    return json.loads(storage.read_text(file, options))

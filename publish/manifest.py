"""A published version's manifest and checksums, read with the standard library alone (the shard reader's needs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: str | Path) -> dict:
    """The manifest of a published version; a clear error when the version was never completed."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise FileNotFoundError(
            f"{path} has no {MANIFEST}: it is not a published version (a crash before the manifest, or the wrong path)"
        )
    return json.loads(file.read_text())

"""A SID build's model artefact in the lake: `<lake>/_artifacts/sid/<build_id>/model.safetensors`, local or on
an object store."""

from __future__ import annotations

from lake import storage
from lake.lake import Lake
from sid_index.artifact import artifact_bytes, load_artifact
from sid_index.rq import SidModel


def save_model(lake: Lake, build_id: str, model: SidModel, extra: dict | None = None) -> str:
    """Store the model of `build_id` under the lake; returns its location."""
    location = lake.path("_artifacts", "sid", build_id, "model.safetensors")
    return storage.write_bytes(location, artifact_bytes(model, extra), lake.storage_options)


def load_model(lake: Lake, location: str, device: str = "cpu") -> SidModel:
    """The model stored at `location` (a build's `artifact` input), ready to encode items."""
    if not storage.is_file(location, lake.storage_options):
        raise FileNotFoundError(f"SID artefact {location} does not exist")
    return load_artifact(storage.read_bytes(location, lake.storage_options), device=device, name=location)

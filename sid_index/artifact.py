"""A portable semantic-ID artefact: one safetensors file (codebooks, RQ-VAE weights) with a JSON header.

A GR serving stack can read it with `safetensors` alone: tensors `codebook.<level>` (and `net.*` for
RQ-VAE), metadata `sidforge` = JSON {format, method, sizes, offsets, vocabulary_size, token, dim, ...}.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import torch
from safetensors.torch import load, save

from sid_index.codec import offsets, vocabulary_size
from sid_index.kmeans import Backend, TorchBackend
from sid_index.rq import RQKMeans, SidModel
from sid_index.rqvae import RQVAE, RQVAENet, RQVAEParams

FORMAT = "sidforge-sid/1"


def header(model: SidModel, extra: dict | None = None) -> dict:
    """The JSON header describing a model's codebooks and token layout."""
    sizes = model.sizes
    out = {
        "format": FORMAT,
        "method": model.method,
        "sizes": sizes,
        "offsets": offsets(sizes),
        "vocabulary_size": vocabulary_size(sizes),
        "token": "C{code + offset}",
        "codebook_dim": int(model.codebooks[0].shape[1]),
    }
    if isinstance(model, RQVAE):
        out["rqvae"] = {
            "hidden": list(model.params.hidden),
            "latent": model.params.latent,
            "input_dim": model.net.input_dim,
        }
    return {**out, **(extra or {})}


def artifact_bytes(model: SidModel, extra: dict | None = None) -> bytes:
    """The model as the bytes of a .safetensors file (the caller stores them, locally or on an object store)."""
    tensors = {
        f"codebook.{level}": torch.from_numpy(np.ascontiguousarray(book, dtype=np.float32))
        for level, book in enumerate(model.codebooks)
    }
    if isinstance(model, RQVAE):
        tensors.update(
            {
                f"net.{k}": v.detach().float().cpu().contiguous()
                for k, v in model.net.state_dict().items()
                if not k.startswith("codebooks.")
            }
        )
    return save(tensors, metadata={"sidforge": json.dumps(header(model, extra))})


def read_header(data: bytes, name: str = "artefact") -> dict:
    """The JSON header of an artefact's bytes; a ValueError naming it when it is not a sidforge artefact."""
    try:
        (length,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + length]).get("__metadata__") or {}
    except (struct.error, ValueError) as exc:
        raise ValueError(f"{name} is not a safetensors file: {exc}") from exc
    if "sidforge" not in meta:
        raise ValueError(f"{name} is not a sidforge SID artefact (no 'sidforge' metadata)")
    return json.loads(meta["sidforge"])


def load_artifact(data: bytes, backend: Backend | None = None, device: str = "cpu", name: str = "artefact") -> SidModel:
    """A model from the bytes written by artifact_bytes, ready to encode new items."""
    head = read_header(data, name)
    tensors = load(data)
    books = [tensors[f"codebook.{level}"].numpy() for level in range(len(head["sizes"]))]
    if head["method"] == "rq-kmeans":
        return RQKMeans(books, backend or TorchBackend(device))
    cfg = head["rqvae"]
    params = RQVAEParams(hidden=tuple(cfg["hidden"]), latent=cfg["latent"])
    net = RQVAENet(cfg["input_dim"], head["sizes"], params)
    state = {k.removeprefix("net."): v for k, v in tensors.items() if k.startswith("net.")}
    state.update({f"codebooks.{level}": torch.from_numpy(b) for level, b in enumerate(books)})
    net.load_state_dict(state)
    dev = torch.device(device)
    return RQVAE(net.to(dev).eval(), params, dev)

"""A portable semantic-ID artefact: one safetensors file (codebooks, RQ-VAE weights) with a JSON header.

A GR serving stack can read it with `safetensors` alone: tensors `codebook.<level>` (and `net.*` for
RQ-VAE), metadata `sidforge` = JSON {format, method, sizes, offsets, vocabulary_size, token, dim, ...}.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

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


def save_artifact(model: SidModel, path: str | Path, extra: dict | None = None) -> Path:
    """Write the model to `path` (.safetensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    save_file(tensors, str(path), metadata={"sidforge": json.dumps(header(model, extra))})
    return path


def read_header(path: str | Path) -> dict:
    """The JSON header of an artefact."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if "sidforge" not in meta:
        raise ValueError(f"{path} is not a sidforge SID artefact (no 'sidforge' metadata)")
    return json.loads(meta["sidforge"])


def load_artifact(path: str | Path, backend: Backend | None = None, device: str = "cpu") -> SidModel:
    """Load an artefact written by save_artifact, ready to encode new items."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SID artefact {path} does not exist")
    head = read_header(path)
    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
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

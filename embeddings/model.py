"""Load an OpenCLIP model from a pretrained tag or a local checkpoint; never a silent random model."""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

RANDOM = "random"
TINY_CONFIG = Path(__file__).parent / "model_configs" / "sidforge-tiny.json"  # a test- and demo-sized model


class WeightsError(RuntimeError):
    """Weights that cannot be found or read, with the file or tag and what to do."""


@dataclass(frozen=True)
class EncoderSpec:
    """Which model to load and where: `weights` is an OpenCLIP pretrained tag, a checkpoint path, or
    "random" (only with `allow_random=True`). `config` registers an extra model config JSON file."""

    model_name: str = "ViT-B-32"
    weights: str | None = None
    allow_random: bool = False
    device: str = "auto"
    precision: str = "auto"
    config: str | None = None
    seed: int = 0


@dataclass
class Encoder:
    """A loaded OpenCLIP model with its image preprocessing and tokenizer."""

    model: Any
    preprocess: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    weights_id: str
    spec: EncoderSpec

    @property
    def embed_dim(self) -> int:
        """Dimension of the image and text embeddings."""
        return int(
            self.model.text_projection.shape[1]
            if hasattr(self.model, "text_projection") and self.model.text_projection is not None
            else self.model.visual.output_dim
        )


def resolve_device(device: str) -> torch.device:
    """`auto` is CUDA when present, else CPU; anything else is taken as a torch device string."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _file_id(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"file-{path.stem}-{digest.hexdigest()[:8]}"


def _looks_like_path(weights: str) -> bool:
    return os.sep in weights or weights.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


def load_encoder(spec: EncoderSpec) -> Encoder:
    """Create the model and load its weights; a WeightsError names the file or tag when they are missing."""
    import open_clip  # here, not at the top: it costs every Dagster process a second and a half at start

    if spec.config:
        config = Path(spec.config)
        if not config.is_file():
            raise WeightsError(f"model config {config} does not exist")
        open_clip.add_model_config(str(config))
    if spec.model_name not in open_clip.list_models():
        raise WeightsError(f"unknown OpenCLIP model {spec.model_name!r}; register its config with `config=`")
    device = resolve_device(spec.device)
    use_half = spec.precision == "fp16" or (spec.precision == "auto" and device.type == "cuda")
    precision = "fp16" if use_half else "fp32"
    if not spec.weights:
        raise WeightsError(
            f"no weights given for {spec.model_name}: pass an OpenCLIP pretrained tag "
            f"({', '.join(open_clip.list_pretrained_tags_by_model(spec.model_name)) or 'none known'}), "
            "a checkpoint file, or 'random' together with allow_random (random_weights) to ask for random weights"
        )
    if spec.weights == RANDOM:
        if not spec.allow_random:
            raise WeightsError(
                f"weights='random' for {spec.model_name} needs allow_random=True (--random-weights); "
                "sidforge never falls back to a random model silently"
            )
        torch.manual_seed(spec.seed)
        pretrained, weights_id = None, f"random-seed{spec.seed}"
    elif _looks_like_path(spec.weights) or Path(spec.weights).is_file():
        path = Path(spec.weights)
        if not path.is_file():
            raise WeightsError(
                f"checkpoint file {path} does not exist; download the weights there or pass a pretrained tag"
            )
        pretrained, weights_id = str(path), _file_id(path)
    else:
        tags = open_clip.list_pretrained_tags_by_model(spec.model_name)
        if spec.weights not in tags:
            raise WeightsError(
                f"{spec.weights!r} is not a pretrained tag of {spec.model_name} (known: {tags}) "
                "and not a checkpoint file"
            )
        pretrained, weights_id = spec.weights, spec.weights
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.model_name, pretrained=pretrained, precision=precision, device=device, weights_only=True
        )
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        offline = (
            " (HF_HUB_OFFLINE is set: put the weights in the Hugging Face cache or pass a file)"
            if os.environ.get("HF_HUB_OFFLINE")
            else ""
        )
        raise WeightsError(f"cannot load weights {spec.weights!r} for {spec.model_name}{offline}: {exc}") from exc
    model.eval()
    tokenizer = open_clip.get_tokenizer(spec.model_name)
    dtype = torch.float16 if use_half else torch.float32
    return Encoder(model, preprocess, tokenizer, device, dtype, weights_id, spec)


def model_id(encoder: Encoder, fusion: str) -> str:
    """The `model` value written with every row: model name, weights and fusion (random weights say so)."""
    return f"{encoder.spec.model_name}:{encoder.weights_id}:{fusion}"

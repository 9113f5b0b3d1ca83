"""Embedding throughput: images and titles per second end to end against the model's pure forward pass.

    python -m benchmarks.embed [--device auto|cpu|cuda] [--images N] [--models sidforge-tiny ViT-B-32]

End to end = JPEG decode + preprocessing in DataLoader workers + encoding (images), tokenization +
encoding (titles). The ceiling is the same model's forward pass on tensors made beforehand. Models use
random weights (no downloads here); speed does not depend on the weights. Results are printed and saved
to benchmarks/results/embed-<device>.json.
"""

from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np
import torch
from PIL import Image

from benchmarks.results_file import save
from embeddings.encode import EncodeStats, encode_images, encode_texts
from embeddings.model import TINY_CONFIG, EncoderSpec, load_encoder


def jpegs(count: int, size: int = 256, seed: int = 0) -> list[bytes]:
    """Distinct noisy JPEG photos of `size` pixels, like product thumbnails."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(min(count, 64)):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return [out[i % len(out)] for i in range(count)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model_name: str, count: int, device: str, batch_size: int, workers: int) -> dict:
    """Throughputs for one model."""
    spec = EncoderSpec(
        model_name,
        "random",
        allow_random=True,
        device=device,
        config=str(TINY_CONFIG) if model_name == "sidforge-tiny" else None,
    )
    encoder = load_encoder(spec)
    images = jpegs(count)
    titles = [f"item {i} red cotton dress | fashion/women/dresses" for i in range(count)]
    warm = EncodeStats(batch_size=batch_size)
    encode_images(encoder, images[:batch_size], [None] * batch_size, warm, workers)
    stats = EncodeStats(batch_size=batch_size)
    encode_images(encoder, images, [None] * count, stats, workers)
    image_e2e = count / stats.image_seconds

    started = time.perf_counter()
    encode_texts(encoder, titles, EncodeStats(batch_size=batch_size))
    _sync(encoder.device)
    text_e2e = count / (time.perf_counter() - started)

    pixels = torch.stack([encoder.preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in images[:batch_size]])
    pixels = pixels.to(encoder.device, encoder.dtype)
    tokens = encoder.tokenizer(titles[:batch_size]).to(encoder.device)
    batches = max(1, count // batch_size)
    with torch.inference_mode():
        encoder.model.encode_image(pixels)
        _sync(encoder.device)
        started = time.perf_counter()
        for _ in range(batches):
            encoder.model.encode_image(pixels)
        _sync(encoder.device)
        image_ceiling = batches * len(pixels) / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(batches):
            encoder.model.encode_text(tokens)
        _sync(encoder.device)
        text_ceiling = batches * len(tokens) / (time.perf_counter() - started)
    return {
        "model": model_name,
        "device": str(encoder.device),
        "dtype": str(encoder.dtype),
        "items": count,
        "batch_size": batch_size,
        "workers": workers,
        "images_per_s": image_e2e,
        "images_forward_per_s": image_ceiling,
        "image_ceiling_ratio": image_ceiling / image_e2e,
        "titles_per_s": text_e2e,
        "titles_forward_per_s": text_ceiling,
        "title_ceiling_ratio": text_ceiling / text_e2e,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=["sidforge-tiny", "ViT-B-32"])
    parser.add_argument(
        "--images",
        type=int,
        nargs="+",
        default=None,
        help="items per model (default: 2048 for the tiny model, 128 for others on CPU)",
    )
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and args.device in ("auto", "cuda")
    rows = []
    for i, name in enumerate(args.models):
        count = args.images[i] if args.images else (2048 if name == "sidforge-tiny" or cuda else 128)
        batch = args.batch_size or (512 if cuda else 64)
        rows.append(measure(name, count, args.device, batch, args.workers))
    print(
        f"{'model':<15}{'device':<8}{'images/s':>10}{'forward':>10}{'ratio':>7}{'titles/s':>11}{'forward':>10}"
        f"{'ratio':>7}"
    )
    for r in rows:
        print(
            f"{r['model']:<15}{r['device']:<8}{r['images_per_s']:>10,.0f}{r['images_forward_per_s']:>10,.0f}"
            f"{r['image_ceiling_ratio']:>6.2f}x{r['titles_per_s']:>11,.0f}{r['titles_forward_per_s']:>10,.0f}"
            f"{r['title_ceiling_ratio']:>6.2f}x"
        )
    device = rows[0]["device"].split(":")[0]
    gpu = torch.cuda.get_device_name(0) if cuda else None
    save(f"embed-{device}", {"results": rows}, gpu=gpu, torch=torch.__version__)


if __name__ == "__main__":
    main()

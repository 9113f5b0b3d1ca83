"""SID build throughput: RQ-KMeans (torch and faiss backends) and RQ-VAE against faiss-cpu and the flop floor.

    python -m benchmarks.sid_build [--device auto|cpu|cuda] [--sizes 20000 100000] [--levels 256 512] [--repeat 3]

For each size: clustered 512-d unit vectors; train 3 levels on all of them (iters per level), then assign
every item. Reported: seconds and items per second end to end, the ratio to the faiss-cpu backend (plain
faiss residual k-means, the reference), and to the arithmetic floor — 2·N·K·D flops per level and
iteration plus one assignment pass, at this device's measured float32 matrix-product rate. The faiss and torch
builds alternate `--repeat` times and the medians are reported. Also times
knn_capacity collision resolution of 10 M items, and the RQ-VAE's seconds per epoch on the `small` catalogue
(50 k x 512, 3 x 256) under both presets, beside FORGE's own trainer with `--forge-repo`. Saves
benchmarks/results/sid_build-<device>.json (`--rqvae-only`: sid_build_rqvae-cpu.json).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks.results_file import save
from sid_index.collisions import resolve
from sid_index.kmeans import FaissBackend, KMeansParams, TorchBackend
from sid_index.rq import train_rq_kmeans
from sid_index.rqvae import RQVAEParams, preset, train_rqvae


def clustered(n: int, dim: int = 512, centres: int = 1000, seed: int = 0) -> np.ndarray:
    """Unit vectors around `centres` random centres (like category-structured item embeddings)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim), dtype=np.float32)
    x = c[rng.integers(0, centres, n)] + 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def matmul_rate(device: torch.device, k: int) -> float:
    """Best measured float32 matrix-product rate (flop/s) for assignment-shaped products (n×512 @ 512×k)."""
    a = torch.randn(8192, 512, device=device)
    b = torch.randn(512, k, device=device)
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(5):
            c = a @ b
        c.sum().item()
        best = max(best, 5 * 2 * a.shape[0] * a.shape[1] * k / (time.perf_counter() - started))
    return best


def _time_rq(backend, x: np.ndarray, sizes: list[int], iters: int) -> float:
    started = time.perf_counter()
    model = train_rq_kmeans(x, sizes, backend, KMeansParams(iters=iters, max_points_per_centroid=10**9))
    model.encode(x)
    return time.perf_counter() - started


def forge_rqvae_epoch_s(repo: str, x: np.ndarray, size: int, epochs: int) -> float:
    """Seconds per epoch of FORGE's own RQ-VAE (SID_generation/rqvae_embed, its rqvae_i2v.yml settings: AdamW
    2e-3, weight decay 1e-4, batch 2048) on `x`, from a checkout of selous123/al_sid at `repo`."""
    import os
    import sys

    import torch.distributed as dist

    sys.path.insert(0, os.path.join(repo, "SID_generation"))
    from rqvae_embed.rqvae_clip import RQVAE_EMBED_CLIP

    if not dist.is_initialized():  # FORGE's code restarts dead codes with collectives
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29555")
        dist.init_process_group("gloo", rank=0, world_size=1)
    hps = {
        "bottleneck_type": "rq",
        "embed_dim": 64,
        "n_embed": size,
        "latent_shape": [8, 8, 64],
        "code_shape": [8, 8, 3],
        "shared_codebook": False,
        "decay": 0.99,
        "restart_unused_codes": True,
        "loss_type": "mse",
        "latent_loss_weight": 0,
        "masked_dropout": 0.0,
        "use_padding_idx": False,
        "VQ_ema": False,
        "latent_weight": [0.5, 0.5],
        "do_bn": False,
        "rotation_trick": False,
    }
    ddconfig = {
        "double_z": False,
        "z_channels": 64,
        "input_dim": x.shape[1],
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": [1, 1, 2, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [8],
        "dropout": 0.0,
    }
    torch.manual_seed(0)
    model = RQVAE_EMBED_CLIP(hps, ddconfig=ddconfig, checkpointing=True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.002, weight_decay=1e-4)
    data = torch.from_numpy(x)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(data))
        for start in range(0, len(data), 2048):
            loss = model(data[order[start : start + 2048]])[0]
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return (time.perf_counter() - started) / epochs


def rqvae_side_by_side(x: np.ndarray, size: int, epochs: int, forge_repo: str | None) -> dict:
    """Seconds per epoch of sidforge's RQ-VAE presets (k-means initialisation excluded) and of FORGE's trainer."""
    out: dict[str, float | int] = {"items": len(x), "sizes": [size] * 3, "epochs": epochs}
    for name in ("sidforge", "forge"):
        short = train_rqvae(x, [size] * 3, preset(name, epochs=1), device="cpu").timings["train_s"]
        full = train_rqvae(x, [size] * 3, preset(name, epochs=epochs + 1), device="cpu").timings["train_s"]
        out[f"{name}_preset_epoch_s"] = (full - short) / epochs
    if forge_repo:
        out["forge_trainer_epoch_s"] = forge_rqvae_epoch_s(forge_repo, x, size, epochs)
        out["forge_preset_vs_forge_trainer"] = out["forge_preset_epoch_s"] / out["forge_trainer_epoch_s"]
    return out


def run(sizes: list[int], books: list[int], device: str, iters: int, rqvae_epochs: int, repeat: int) -> dict:
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    rows = []
    for n, k in zip(sizes, books, strict=True):
        rate = matmul_rate(dev, k)
        x = clustered(n)
        levels = [k, k, k]
        floor = (iters + 1) * len(levels) * 2 * n * k * x.shape[1] / rate
        runs: dict[str, list[float]] = {"faiss": [], "torch": []}
        for _ in range(repeat):  # interleaved, so that drifts in this machine's speed hit both alike
            runs["faiss"].append(_time_rq(FaissBackend(), x, levels, iters))
            runs["torch"].append(_time_rq(TorchBackend(str(dev)), x, levels, iters))
        faiss_s, torch_s = statistics.median(runs["faiss"]), statistics.median(runs["torch"])
        started = time.perf_counter()
        vae = train_rqvae(x, levels, RQVAEParams(epochs=rqvae_epochs), device=str(dev))
        vae.encode(x)
        vae_s = time.perf_counter() - started
        rows.append(
            {
                "items": n,
                "sizes": levels,
                "iters": iters,
                "repeat": repeat,
                "floor_s": floor,
                "matmul_flops": rate,
                "faiss_cpu_s": faiss_s,
                "torch_s": torch_s,
                "torch_device": str(dev),
                "rqvae_s": vae_s,
                "rqvae_epochs": rqvae_epochs,
                "faiss_items_per_s": n / faiss_s,
                "torch_items_per_s": n / torch_s,
                "rqvae_items_per_s": n / vae_s,
                "torch_vs_faiss": torch_s / faiss_s,
                "torch_vs_floor": torch_s / floor,
                "faiss_vs_floor": faiss_s / floor,
            }
        )
    rng = np.random.default_rng(0)
    n = 10_000_000
    codes = np.stack([rng.integers(0, 8192, n), rng.integers(0, 64, n), rng.zipf(1.5, n) % 8192], 1).astype(np.int32)
    cands = np.concatenate([codes[:, 2:], rng.integers(0, 8192, (n, 7))], 1).astype(np.int32)
    dists = np.sort(rng.random((n, 8), dtype=np.float32), 1)
    started = time.perf_counter()
    report = resolve(codes, cands, dists, [8192, 8192, 8192], "knn_capacity", 5).report
    resolution = {"items": n, "seconds": time.perf_counter() - started, **report}
    return {"builds": rows, "collision_resolution": resolution}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--levels", type=int, nargs="+", default=[256, 512], help="codebook size per level")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--rqvae-epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per backend (median reported)")
    parser.add_argument("--rqvae-only", action="store_true", help="only the RQ-VAE epoch-time comparison")
    parser.add_argument(
        "--forge-repo",
        default=None,
        help="a checkout of selous123/al_sid: time FORGE's own "
        "RQ-VAE trainer beside sidforge's presets (needs omegaconf and einops)",
    )
    args = parser.parse_args()
    from ingest.synthetic import Generator

    side = rqvae_side_by_side(Generator("small").embeddings(), 256, 3, args.forge_repo)
    print(
        f"RQ-VAE on {side['items']:,} x 512, 3 x 256, s/epoch: "
        + ", ".join(f"{k.removesuffix('_epoch_s')} {v:.2f}" for k, v in side.items() if k.endswith("_epoch_s"))
    )
    if args.rqvae_only:
        save("sid_build_rqvae-cpu", {"rqvae_epoch_time": side}, torch=torch.__version__)
        return
    result = run(args.sizes, args.levels, args.device, args.iters, args.rqvae_epochs, args.repeat)
    print(
        f"{'items':>9} {'sizes':>16} {'GFLOP/s':>8} {'floor s':>8} {'faiss s':>8} {'torch s':>8} {'rq-vae s':>9} "
        f"{'torch/faiss':>12} {'torch/floor':>12}"
    )
    for r in result["builds"]:
        print(
            f"{r['items']:>9,} {r['sizes']!s:>16} {r['matmul_flops'] / 1e9:>8.0f} {r['floor_s']:>8.2f} "
            f"{r['faiss_cpu_s']:>8.2f} {r['torch_s']:>8.2f} {r['rqvae_s']:>9.2f} "
            f"{r['torch_vs_faiss']:>11.2f}x {r['torch_vs_floor']:>11.2f}x"
        )
    res = result["collision_resolution"]
    print(
        f"knn_capacity on {res['items']:,} items: {res['seconds']:.1f} s (collision rate "
        f"{res['collision_rate_before']:.3f} -> {res['collision_rate_after']:.3f}, moved {res['items_moved']:,})"
    )
    device = result["builds"][0]["torch_device"].split(":")[0]
    save(
        f"sid_build-{device}",
        {**result, "rqvae_epoch_time": side},
        torch=torch.__version__,
        gpu=torch.cuda.get_device_name(0) if device == "cuda" else None,
    )


if __name__ == "__main__":
    main()

"""SID build throughput: RQ-KMeans (torch and faiss backends) and RQ-VAE against faiss-cpu and the flop floor.

    python -m benchmarks.sid_build [--device auto|cpu|cuda] [--sizes 20000 100000] [--levels 256 512] [--repeat 3]
        [--backends torch faiss] [--precision fp32|tf32|bf16] [--max-points-per-centroid N] [--rqvae-epochs 3]

For each size: clustered 512-d unit vectors (drawn on the GPU with --device cuda); train 3 levels on all of
them, or on k x N rows per level with --max-points-per-centroid N as builds do (iters per level), then assign
every item; the per-stage seconds are saved too. Reported: seconds and items per second end to end, the ratio
to the faiss-cpu backend (plain faiss residual k-means, the reference), and to the arithmetic floor — 2·N·K·D
flops per level and iteration plus one assignment pass, at this device's measured float32 matrix-product rate.
The faiss and torch builds alternate `--repeat` times and the medians are reported. Also times knn_capacity
collision resolution of 10 M items, and the RQ-VAE's seconds per epoch on the `small` catalogue (50 k x 512, 3
x 256) under both presets, beside FORGE's own trainer with `--forge-repo`. Saves
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
from sid_index.kmeans import BACKENDS, PRECISIONS, FaissBackend, KMeansParams, Precision, TorchBackend
from sid_index.rq import train_rq_kmeans
from sid_index.rqvae import RQVAEParams, preset, train_rqvae


def clustered(n: int, dim: int = 512, centres: int = 1000, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """Unit vectors around `centres` random centres (like category-structured item embeddings); drawn on the
    GPU when `device` is cuda (same distribution, other numbers), which makes 10 M rows in seconds."""
    if device != "cpu":
        gen = torch.Generator(device).manual_seed(seed)
        c = torch.randn(centres, dim, generator=gen, device=device)
        out = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, 1 << 20):
            rows = min(1 << 20, n - start)
            picks = torch.randint(0, centres, (rows,), generator=gen, device=device)
            x = c[picks] + 0.6 * torch.randn(rows, dim, generator=gen, device=device)
            out[start : start + rows] = torch.nn.functional.normalize(x, dim=1).cpu().numpy()
        return out
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


def _time_rq(backend, x: np.ndarray, sizes: list[int], params: KMeansParams) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    model = train_rq_kmeans(x, sizes, backend, params)
    trained = time.perf_counter()
    model.encode(x)
    done = time.perf_counter()
    return done - started, {"train_s": trained - started, "encode_s": done - trained, **model.timings}


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


def run(
    sizes: list[int],
    books: list[int],
    device: str,
    params: KMeansParams,
    rqvae_epochs: int,
    repeat: int,
    backends: list[str],
    precision: Precision,
) -> dict:
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    make = {"faiss": FaissBackend, "torch": lambda: TorchBackend(str(dev), precision)}
    rows = []
    for n, k in zip(sizes, books, strict=True):
        rate = matmul_rate(dev, k)
        x = clustered(n, device=dev.type)
        levels = [k, k, k]
        trained = min(n, k * params.max_points_per_centroid)
        floor = (params.iters * trained + n) * len(levels) * 2 * k * x.shape[1] / rate
        runs: dict[str, list[tuple[float, dict[str, float]]]] = {name: [] for name in backends}
        for _ in range(repeat):  # interleaved, so that drifts in this machine's speed hit both alike
            for name in backends:
                runs[name].append(_time_rq(make[name](), x, levels, params))
        row: dict = {
            "items": n,
            "sizes": levels,
            "iters": params.iters,
            "trained_on": trained,
            "repeat": repeat,
            "floor_s": floor,
            "matmul_flops": rate,
            "torch_device": str(dev),
            "torch_precision": precision,
        }
        for name, timed in runs.items():
            seconds = statistics.median(t for t, _ in timed)
            key = "faiss_cpu" if name == "faiss" else "torch"
            row |= {f"{key}_s": seconds, f"{key}_items_per_s": n / seconds, f"{key}_vs_floor": seconds / floor}
            row[f"{key}_stages"] = min(timed, key=lambda t: abs(t[0] - seconds))[1]
        if "faiss_cpu_s" in row and "torch_s" in row:
            row["torch_vs_faiss"] = row["torch_s"] / row["faiss_cpu_s"]
        if rqvae_epochs:
            started = time.perf_counter()
            vae = train_rqvae(x, levels, RQVAEParams(epochs=rqvae_epochs), device=str(dev))
            vae.encode(x)
            row["rqvae_s"] = time.perf_counter() - started
            row |= {"rqvae_epochs": rqvae_epochs, "rqvae_items_per_s": n / row["rqvae_s"]}
        rows.append(row)
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
    parser.add_argument(
        "--max-points-per-centroid",
        type=int,
        default=10**9,
        help="train each level on at most k times this many rows (default: all; builds use 256, as faiss)",
    )
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="the torch backend's products")
    parser.add_argument("--rqvae-epochs", type=int, default=3, help="0: no RQ-VAE build and no epoch comparison")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per backend (median reported)")
    parser.add_argument("--rqvae-only", action="store_true", help="only the RQ-VAE epoch-time comparison")
    parser.add_argument(
        "--forge-repo",
        default=None,
        help="a checkout of selous123/al_sid: time FORGE's own "
        "RQ-VAE trainer beside sidforge's presets (needs omegaconf and einops)",
    )
    args = parser.parse_args()
    side = None
    if args.rqvae_epochs or args.rqvae_only:
        from ingest.synthetic import Generator

        side = rqvae_side_by_side(Generator("small").embeddings(), 256, 3, args.forge_repo)
        print(
            f"RQ-VAE on {side['items']:,} x 512, 3 x 256, s/epoch: "
            + ", ".join(f"{k.removesuffix('_epoch_s')} {v:.2f}" for k, v in side.items() if k.endswith("_epoch_s"))
        )
    if args.rqvae_only:
        save("sid_build_rqvae-cpu", {"rqvae_epoch_time": side}, torch=torch.__version__)
        return
    params = KMeansParams(iters=args.iters, max_points_per_centroid=args.max_points_per_centroid)
    result = run(
        args.sizes, args.levels, args.device, params, args.rqvae_epochs, args.repeat, args.backends, args.precision
    )
    print(
        f"{'items':>10} {'sizes':>18} {'trained on':>10} {'GFLOP/s':>8} {'floor s':>8} {'faiss s':>8} "
        f"{'torch s':>8} {'rq-vae s':>9} {'torch/floor':>12}"
    )
    for r in result["builds"]:
        print(
            f"{r['items']:>10,} {r['sizes']!s:>18} {r['trained_on']:>10,} {r['matmul_flops'] / 1e9:>8.0f} "
            f"{r['floor_s']:>8.2f} {r.get('faiss_cpu_s', float('nan')):>8.2f} {r.get('torch_s', float('nan')):>8.2f} "
            f"{r.get('rqvae_s', float('nan')):>9.2f} {r.get('torch_vs_floor', float('nan')):>11.2f}x"
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

"""Synthetic AL-GR-shaped data with structure that makes embeddings and semantic IDs meaningful.

Items belong to latent categories (with related categories), have titles and small images rendered from
their category and 512-d embeddings near the category centroid; popularity follows a power law; user
sessions mostly stay within related categories; three stages fall on consecutive days and the test users
of each stage come from the day after it. Output uses the real file formats (see ingest.sources.algr).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ingest.sources.algr import ALGR_BASE_DS, EMBEDDING_DIM, SYSTEM_PROMPT, USER_PREFIX
from lake import storage
from sid_index.codec import ALGR_CODEBOOK_SIZE, render

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BEHAVIOR_P = {"pv": 0.85, "cart": 0.05, "fav": 0.04, "buy": 0.06}
STAGES = 3
_WORDS = [
    "red",
    "slim",
    "classic",
    "soft",
    "smart",
    "mini",
    "pro",
    "cotton",
    "steel",
    "eco",
    "retro",
    "travel",
    "kids",
    "winter",
    "summer",
    "wireless",
    "leather",
    "organic",
    "deluxe",
    "compact",
]
_NOUNS = [
    "dress",
    "phone case",
    "sneaker",
    "lamp",
    "mug",
    "backpack",
    "watch",
    "jacket",
    "kettle",
    "toy car",
    "headphones",
    "notebook",
    "scarf",
    "blender",
    "tent",
    "lipstick",
    "charger",
    "sofa",
    "rug",
    "bottle",
]


@dataclass(frozen=True)
class Scale:
    """Sizes of a generated data set."""

    items: int
    categories: int
    users: int
    events_per_user: float
    days: int = STAGES + 1
    image_variants: int = 4
    npz_items: int = 100_000


SCALES = {
    "tiny": Scale(items=300, categories=12, users=120, events_per_user=12),
    "demo": Scale(items=5_000, categories=40, users=2_000, events_per_user=20),
    "small": Scale(items=50_000, categories=200, users=20_000, events_per_user=40),
    "large": Scale(items=1_000_000, categories=1_000, users=400_000, events_per_user=28),
}


def base62(values: np.ndarray, width: int = 6) -> list[str]:
    """Fixed-width base62 strings for non-negative integers (AL-GR style item ids)."""
    out = np.empty((len(values), width), dtype="<U1")
    rest = values.astype(np.int64).copy()
    alphabet = np.array(list(BASE62))
    for pos in range(width - 1, -1, -1):
        out[:, pos] = alphabet[rest % 62]
        rest //= 62
    return ["".join(row) for row in out]


def _png(color: tuple[int, int, int], variant: int, size: int = 32) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), color)
    draw = ImageDraw.Draw(img)
    inv = tuple(255 - c for c in color)
    step = size // 4
    if variant % 2:
        draw.ellipse([step, step, size - step, size - step], fill=inv)
    else:
        draw.rectangle([step * (variant % 3), step, size - step, size - step * (1 + variant % 2)], fill=inv)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class Generator:
    """Builds one synthetic world from a scale and a seed and writes it in the AL-GR formats."""

    def __init__(self, scale: str | Scale, seed: int = 0, base_ds: str = ALGR_BASE_DS):
        self.scale = SCALES[scale] if isinstance(scale, str) else scale
        self.seed = seed
        self.base = dt.date.fromisoformat(base_ds)
        self.rng = np.random.default_rng(seed)
        s = self.scale
        rng = self.rng
        sizes = rng.dirichlet(np.full(s.categories, 2.0)) * (s.items - s.categories)
        counts = np.floor(sizes).astype(np.int64) + 1
        counts[: s.items - counts.sum()] += 1
        self.item_cat = np.repeat(np.arange(s.categories), counts)
        space = 62**5 * 8  # a bijective scramble of 0..items-1 into 6-character base62 ids
        scrambled = ((np.arange(s.items, dtype=np.int64) + seed * 7919) * 2654435761) % space
        self.item_ids = np.array(base62(scrambled + 62**5), dtype=object)
        self.related = np.stack([(np.arange(s.categories) + k) % s.categories for k in (1, 2, -1)], axis=1)
        self.popularity = rng.pareto(1.2, s.items) + 1.0
        starts = np.concatenate([[0], np.cumsum(counts)])
        self.cat_start, self.cat_count = starts[:-1], counts
        # Per-category popularity CDFs laid end to end: category c occupies [c, c + 1].
        self.global_cdf = np.concatenate(
            [
                c + np.cumsum(self.popularity[a:b]) / self.popularity[a:b].sum()
                for c, (a, b) in enumerate(itertools.pairwise(starts))
            ]
        )

    # -- items ------------------------------------------------------------------------------
    def embeddings(self) -> np.ndarray:
        """Unit 512-d vectors near their category centroid (which is near its related categories)."""
        rng = np.random.default_rng(self.seed + 1)
        centroids = rng.normal(size=(self.scale.categories, EMBEDDING_DIM))
        centroids = centroids + 0.5 * centroids[self.related[:, 0]]
        centroids = (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).astype(np.float32)
        vectors = np.empty((self.scale.items, EMBEDDING_DIM), dtype=np.float32)
        for start in range(0, self.scale.items, 65_536):  # chunks keep memory near the output's size
            stop = min(start + 65_536, self.scale.items)
            noise = rng.standard_normal((stop - start, EMBEDDING_DIM), dtype=np.float32) / np.sqrt(EMBEDDING_DIM)
            chunk = centroids[self.item_cat[start:stop]] + np.float32(0.45) * noise
            vectors[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
        return vectors

    def item_sids(self) -> np.ndarray:
        """Reference 3-level codes: category, a sub-cluster, and a rank that keeps SIDs mostly unique."""
        rng = np.random.default_rng(self.seed + 2)
        lv1 = self.item_cat % ALGR_CODEBOOK_SIZE
        lv2 = rng.integers(0, 16, self.scale.items)
        order = np.lexsort((np.arange(self.scale.items), lv2, lv1))
        key = lv1[order] * 16 + lv2[order]
        first = np.concatenate([[0], np.flatnonzero(np.diff(key)) + 1])
        rank = np.arange(len(key)) - np.repeat(first, np.diff(np.append(first, len(key))))
        lv3 = np.empty_like(rank)
        lv3[order] = rank % ALGR_CODEBOOK_SIZE
        return np.stack([lv1, lv2, lv3], axis=1)

    def titles(self) -> list[str]:
        rng = np.random.default_rng(self.seed + 3)
        adj = rng.integers(0, len(_WORDS), self.scale.items)
        return [f"{_WORDS[a]} {_NOUNS[c % len(_NOUNS)]} #{c}" for a, c in zip(adj, self.item_cat, strict=True)]

    # -- events -----------------------------------------------------------------------------
    def events(self) -> pl.DataFrame:
        """User events over `days` days: user_id, item_id, behavior, timestamp (epoch seconds)."""
        s = self.scale
        rng = np.random.default_rng(self.seed + 4)
        n_events = np.maximum(2, rng.poisson(s.events_per_user, s.users))
        length = int(n_events.max())
        cat = rng.integers(0, s.categories, s.users)
        items = np.empty((s.users, length), dtype=np.int64)
        for step in range(length):
            move = rng.random(s.users)
            jump = rng.integers(0, 3, s.users)
            cat = np.where(move < 0.12, self.related[cat, jump], cat)
            cat = np.where(move > 0.97, rng.integers(0, s.categories, s.users), cat)
            u = rng.random(s.users)
            picks = np.searchsorted(self.global_cdf, cat + u)
            picks = np.clip(picks, self.cat_start[cat], self.cat_start[cat] + self.cat_count[cat] - 1)
            items[:, step] = picks
        mask = np.arange(length)[None, :] < n_events[:, None]
        user_idx = np.broadcast_to(np.arange(s.users)[:, None], mask.shape)[mask]
        item_idx = items[mask]
        offsets = rng.integers(0, s.days * 86_400, mask.shape)
        offsets[~mask] = np.iinfo(np.int64).max
        offsets = np.sort(offsets, axis=1)[mask]
        epoch0 = int(dt.datetime.combine(self.base, dt.time(), dt.UTC).timestamp())
        behaviors = np.array(list(BEHAVIOR_P))[rng.choice(len(BEHAVIOR_P), len(item_idx), p=list(BEHAVIOR_P.values()))]
        user_names = np.array(base62(np.arange(s.users) + 62**6, width=8), dtype=object)
        return pl.DataFrame(
            {
                "user_id": user_names[user_idx],
                "item_id": self.item_ids[item_idx],
                "behavior": behaviors,
                "timestamp": epoch0 + offsets,
            }
        ).sort("user_id", "timestamp", maintain_order=True)

    # -- writers ----------------------------------------------------------------------------
    def write(self, out: str | Path) -> dict:
        """Write every format under `out` and return the manifest (also saved as manifest.json)."""
        out = Path(out)
        events = self.events()
        vectors = self.embeddings()
        codes = self.item_sids()
        counts = {"items": self.scale.items, "events": events.height}
        self._write_events(out / "events", events)
        self._write_items(out / "items")
        counts |= self._write_sequences(out / "algr", events, codes)
        self._write_item_emb(out / "algr" / "item_emb", vectors)
        self._write_item_sid(out / "algr" / "item_sid", codes)
        n = min(self.scale.items, self.scale.npz_items)
        np.savez(out / "algr" / "item_embeddings.npz", ids=self.item_ids[:n].astype(str), embeds=vectors[:n])
        manifest = {
            "scale": asdict(self.scale),
            "seed": self.seed,
            "base_ds": self.base.isoformat(),
            "counts": counts,
            "days": [self._day(d) for d in range(self.scale.days)],
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return manifest

    def _day(self, offset: int) -> str:
        return (self.base + dt.timedelta(days=offset)).isoformat()

    def _write_events(self, folder: Path, events: pl.DataFrame) -> None:
        epoch0 = int(dt.datetime.combine(self.base, dt.time(), dt.UTC).timestamp())
        day = (events["timestamp"] - epoch0) // 86_400
        for offset in range(self.scale.days):
            target = folder / f"ds={self._day(offset)}"
            target.mkdir(parents=True, exist_ok=True)
            events.filter(day == offset).write_csv(target / "events.csv")

    def _write_items(self, folder: Path) -> None:
        images = folder / "images"
        images.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(self.seed + 5)
        variant = rng.integers(0, self.scale.image_variants, self.scale.items)
        palette = np.random.default_rng(self.seed + 6).integers(30, 226, (self.scale.categories, 3))
        for c in range(self.scale.categories):
            for v in range(self.scale.image_variants):
                red, green, blue = (int(x) for x in palette[c])
                (images / f"c{c:05d}_v{v}.png").write_bytes(_png((red, green, blue), v))
        pl.DataFrame(
            {
                "item_id": self.item_ids,
                "title": self.titles(),
                "category": [f"cat{c:05d}/sub{c % 7}" for c in self.item_cat],
                "image": [f"images/c{c:05d}_v{v}.png" for c, v in zip(self.item_cat, variant, strict=True)],
            }
        ).write_csv(folder / "items.csv")

    def _write_sequences(self, folder: Path, events: pl.DataFrame, codes: np.ndarray) -> dict:
        """Origin-Sequence-Data and GR instruction files per stage, train and test."""
        epoch0 = int(dt.datetime.combine(self.base, dt.time(), dt.UTC).timestamp())
        ev = events.with_columns(day=((pl.col("timestamp") - epoch0) // 86_400).cast(pl.Int32))
        sid = pl.DataFrame({"item_id": self.item_ids, "tokens": render(codes, [ALGR_CODEBOOK_SIZE] * 3)})
        (folder / "origin_behavior").mkdir(parents=True, exist_ok=True)
        (folder / "train_data").mkdir(parents=True, exist_ok=True)
        (folder / "test_data").mkdir(parents=True, exist_ok=True)
        counts = {}
        ev = ev.with_columns(pos=pl.int_range(pl.len()).over("user_id"))
        for stage in range(1, STAGES + 1):
            for split, target_day in (("train", stage - 1), ("test", stage)):
                on_day = ev.filter(pl.col("day") == target_day).group_by("user_id", maintain_order=True)
                take = (lambda c: c.tail(2)) if split == "train" else (lambda c: c.head(2))
                targets = on_day.agg(take(pl.col("item_id")).alias("target"), take(pl.col("pos")).min().alias("cut"))
                hist = (
                    ev.join(targets.select("user_id", "cut"), on="user_id")
                    .filter(pl.col("pos") < pl.col("cut"))
                    .group_by("user_id", maintain_order=True)
                    .agg(pl.col("item_id").tail(50).reverse().alias("history"))
                )
                rows = hist.join(targets, on="user_id", how="inner", maintain_order="left")
                name = f"s{stage}" if split == "train" else f"s{stage}_test"
                rows.select(
                    user_history=pl.col("history").list.join(";"), target_item=pl.col("target").list.join(";")
                ).write_csv(folder / "origin_behavior" / f"{name}.csv")
                counts[f"sequences_{name}"] = rows.height
                self._write_gr(folder / f"{split}_data" / f"{name}.tsv", rows, sid)
        return counts

    @staticmethod
    def _write_gr(path: Path, rows: pl.DataFrame, sid: pl.DataFrame) -> None:
        lookup = dict(zip(sid["item_id"], sid["tokens"], strict=True))
        user = [USER_PREFIX + "".join(lookup[i] for i in reversed(h)) for h in rows["history"]]
        answer = ["".join(lookup[i] for i in t) for t in rows["target"]]
        pl.DataFrame(
            {
                "id": [f"{path.stem}-{i}" for i in range(rows.height)],
                "system": [SYSTEM_PROMPT] * rows.height,
                "user": user,
                "answer": answer,
            }
        ).write_csv(path, separator="\t")

    def _write_item_emb(self, folder: Path, vectors: np.ndarray, shard_rows: int = 200_000) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        raw = vectors.astype("<f4")
        for shard, start in enumerate(range(0, len(raw), shard_rows)):
            part = raw[start : start + shard_rows]
            features = [base64.b64encode(row.tobytes()).decode("ascii") for row in part]
            pl.DataFrame({"base62_string": self.item_ids[start : start + len(part)], "feature": features}).write_csv(
                folder / f"item_emb_{shard:03d}.csv"
            )

    def _write_item_sid(self, folder: Path, codes: np.ndarray) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(
            {
                "base62_string": self.item_ids,
                "codebook_lv1": codes[:, 0],
                "codebook_lv2": codes[:, 1],
                "codebook_lv3": codes[:, 2],
            }
        ).write_csv(folder / "item_sid_final.csv")


def generate(out: str | Path, scale: str = "tiny", seed: int = 0, base_ds: str = ALGR_BASE_DS) -> dict:
    """Generate a synthetic data set at `scale` under `out` (a local folder, or an object-store prefix such as
    `s3://bucket/landing`, written locally first and then uploaded); returns its manifest."""
    generator = Generator(scale, seed, base_ds)
    if not storage.is_uri(out):
        return generator.write(out)
    with tempfile.TemporaryDirectory(prefix="sidforge-generate-") as folder:
        manifest = generator.write(folder)
        storage.upload_folder(folder, out)
    return manifest

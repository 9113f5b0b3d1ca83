"""A PyTorch IterableDataset over a published version: checksums verified, shards split across DataLoader
workers and distributed ranks without overlap or loss, a seeded shuffle per epoch, padded token tensors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lake import storage
from publish.manifest import read_manifest, sha256_of


class ChecksumError(RuntimeError):
    """A shard whose bytes do not match its manifest."""


class GRShards(IterableDataset):
    """Examples of one split of a published version as dicts of tensors (use `collate` to batch them).

    With `items`, each example also has `history_items` and `target_items` (the item ids, history oldest first).
    Shard i goes to the consumer (rank × workers + worker) with i mod consumers equal to its index, so every
    example is read exactly once per epoch across all ranks and workers. `set_epoch` changes the shuffle.
    """

    def __init__(
        self,
        path: str | Path,
        split: str = "train",
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        verify: bool = True,
        items: bool = False,
        storage_options: dict[str, str] | None = None,
    ):
        self.path, self.options = storage.normalize(path), storage_options
        self.manifest = read_manifest(self.path, storage_options)
        self.shards = [s for s in self.manifest["shards"] if s["split"] == split]
        self.split, self.shuffle, self.seed, self.epoch = split, shuffle, seed, 0
        self.rank, self.world_size, self.verify, self.items = rank, world_size, verify, items
        self.pad = self.manifest["token_layout"]["pad_token"]

    def __len__(self) -> int:
        return sum(s["rows"] for s in self.shards)

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of `epoch` (call before each epoch, as with DistributedSampler)."""
        self.epoch = epoch

    def _mine(self) -> list[dict]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        consumers, me = self.world_size * workers, self.rank * workers + worker
        order = np.arange(len(self.shards))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        return [self.shards[i] for i in order[me::consumers]]

    def __iter__(self) -> Iterator[dict]:
        for shard in self._mine():
            file = storage.join(self.path, shard["path"])
            if self.verify and sha256_of(file, self.options) != shard["sha256"]:
                raise ChecksumError(f"{file} does not match its manifest checksum; the version is corrupt")
            fs, inside = storage.filesystem(file, self.options)
            columns = ["example", "history_tokens", "target_tokens", *(["history", "target"] if self.items else [])]
            table = pq.read_table(inside, filesystem=fs, columns=columns)
            rows = np.arange(table.num_rows)
            if self.shuffle:
                rows = np.random.default_rng([self.seed, self.epoch, int(shard["sha256"][:8], 16)]).permutation(rows)
            examples = table.column("example").to_pylist()
            history = table.column("history_tokens").to_pylist()
            target = table.column("target_tokens").to_pylist()
            ids = {f"{c}_items": table.column(c).to_pylist() for c in ("history", "target") if self.items}
            for i in rows:
                yield {
                    "example": examples[i],
                    "history": torch.tensor(history[i], dtype=torch.long),
                    "target": torch.tensor(target[i], dtype=torch.long),
                    **{key: values[i] for key, values in ids.items()},
                }

    def collate(self, batch: list[dict]) -> dict:
        """Right-padded history and target token ids (pad = vocabulary size) with their lengths."""

        def pad(key: str) -> tuple[torch.Tensor, torch.Tensor]:
            lengths = torch.tensor([len(b[key]) for b in batch], dtype=torch.long)
            out = torch.full((len(batch), int(lengths.max()) if len(batch) else 0), self.pad, dtype=torch.long)
            for row, item in enumerate(batch):
                out[row, : len(item[key])] = item[key]
            return out, lengths

        history, history_len = pad("history")
        target, target_len = pad("target")
        return {
            "example": [b["example"] for b in batch],
            "history": history,
            "history_len": history_len,
            "target": target,
            "target_len": target_len,
        }

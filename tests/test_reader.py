"""The PyTorch reader: every example exactly once across ranks and workers, seeded shuffles, checksums."""

import shutil

import pytest
import torch
from torch.utils.data import DataLoader

from ingest.run import ingest
from lake import Lake
from publish.training_data import publish_training_data
from serving.reader import ChecksumError, GRShards


@pytest.fixture(scope="module")
def version(tmp_path_factory, tiny_raw):
    lake = Lake(tmp_path_factory.mktemp("lake"))
    ingest(lake, [tiny_raw / "algr" / "origin_behavior"], "algr-sequences")
    ingest(lake, [tiny_raw / "algr" / "item_sid"], "algr-item-sid")
    return publish_training_data(lake, build_id="algr-item_sid_final", rows_per_shard=40).published.path


def _examples(version, world_size: int):
    out = []
    for rank in range(world_size):
        ds = GRShards(version, "train", rank=rank, world_size=world_size, seed=3)
        loader = DataLoader(ds, batch_size=16, num_workers=2, collate_fn=ds.collate)
        for batch in loader:
            out += batch["example"]
    return out


def test_ranks_and_workers_read_every_example_once(version):
    seen = _examples(version, world_size=2)
    total = len(GRShards(version, "train"))
    assert len(seen) == total == len(set(seen))
    assert len(GRShards(version, "train").shards) >= 4


def test_shuffle_is_seeded_per_epoch(version):
    def order(epoch, seed=3):
        ds = GRShards(version, "train", seed=seed)
        ds.set_epoch(epoch)
        return [e["example"] for e in ds]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == sorted(order(1))
    unshuffled = [e["example"] for e in GRShards(version, "train", shuffle=False)]
    assert unshuffled == [e["example"] for e in GRShards(version, "train", shuffle=False)]


def test_batches_are_padded_token_tensors(version):
    ds = GRShards(version, "test", shuffle=False)
    batch = ds.collate([ds_item for ds_item, _ in zip(ds, range(5), strict=False)])
    assert batch["history"].dtype == torch.long and batch["history"].shape[0] == 5
    for row, length in enumerate(batch["history_len"].tolist()):
        assert (batch["history"][row, length:] == ds.pad).all()
        assert (batch["history"][row, :length] < ds.pad).all()
    assert (batch["target_len"] >= 3).all()


def test_a_corrupted_shard_is_refused(version, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(version, copy)
    shard = next(copy.glob("train/*.parquet"))
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="checksum"):
        list(GRShards(copy, "train", shuffle=False))


def test_items_come_with_their_ids_and_a_builds_codes_give_the_shards_tokens(version):
    import numpy as np
    import polars as pl

    from quality.gr_probe import SidSpace

    lake = Lake(version.split("/published/")[0])
    rows = lake.scan("item_sids").filter(pl.col("build_id") == "algr-item_sid_final").collect()
    sizes = GRShards(version, "test").manifest["token_layout"]["sizes"]
    space = SidSpace(rows["item_id"].to_list(), np.asarray(rows["codes"].to_list()), sizes)
    examples = list(GRShards(version, "test", shuffle=False, items=True))
    assert examples and {"history_items", "target_items"} <= set(examples[0])
    for example in examples:
        assert space.history_tokens(example["history_items"]).tolist() == example["history"].tolist()
        assert space.history_tokens(example["target_items"]).tolist() == example["target"].tolist()
    assert "history_items" not in next(iter(GRShards(version, "test", shuffle=False)))

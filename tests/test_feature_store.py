"""Feature-store lookups: point-in-time SIDs and embeddings, SIDs back to items, valid prefixes, as-of joins."""

import datetime as dt
import json
import time
import warnings

import numpy as np
import polars as pl
import pytest

from ingest.run import ingest
from lake import Lake
from serving.feature_store import FeatureStore, is_valid_prefix
from tests.helpers import write

HEADER = "base62_string,codebook_lv1,codebook_lv2,codebook_lv3\n"


def _publish(lake: Lake, build: str) -> None:
    row = lake.scan("sid_builds").filter(pl.col("build_id") == build).collect()
    lake.merge("sid_builds", row.with_columns(status=pl.lit("published")), run_id=f"publish-{build}")


def test_point_in_time_sids_and_as_of_training_frames(tmp_path):
    lake = Lake(tmp_path / "lake")
    ingest(lake, [write(tmp_path / "b1.csv", HEADER + "x,1,2,3\ny,1,2,4\n")], "algr-item-sid", build_id="b1")
    _publish(lake, "b1")
    time.sleep(0.05)
    between = dt.datetime.now(dt.UTC)
    time.sleep(0.05)
    ingest(lake, [write(tmp_path / "b2.csv", HEADER + "x,7,7,7\ny,1,2,4\n")], "algr-item-sid", build_id="b2")
    _publish(lake, "b2")
    store = FeatureStore(lake)
    assert store.published_build() == "b2" and store.published_build(between) == "b1"
    assert store.sids(["x"], as_of=between)["sid"].to_list() == ["C1C8194C16387"]
    assert store.sids(["x"])["sid"].to_list() == ["C7C8199C16391"]
    assert store.items_of(["C1C8194C16388"], "b2")["item_id"].to_list() == [["y"]]
    events = pl.DataFrame(
        {
            "user_id": ["u", "u"],
            "item_id": ["x", "x"],
            "event_ts": [between, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)],
        }
    )
    frame = store.training_frame(events, by="published_at")
    assert frame["build_id"].to_list() == ["b1", "b2"]
    assert frame["sid"].to_list() == ["C1C8194C16387", "C7C8199C16391"]


def test_embeddings_as_of_an_earlier_version(tmp_path):
    lake = Lake(tmp_path / "lake")
    np.savez(tmp_path / "e.npz", ids=np.array(["a", "b"]), embeds=np.eye(2, dtype=np.float32))
    ingest(lake, [tmp_path / "e.npz"], "npz", model="m")
    first = lake.version("item_embeddings")
    np.savez(tmp_path / "e.npz", ids=np.array(["a", "b"]), embeds=2 * np.eye(2, dtype=np.float32))
    ingest(lake, [tmp_path / "e.npz"], "npz", model="m")
    store = FeatureStore(lake)
    assert store.embeddings(["a"], "m", as_of=first)["embedding"][0].to_list() == [1.0, 0.0]
    assert store.embeddings(["a"], "m")["embedding"][0].to_list() == [2.0, 0.0]


def test_valid_prefixes_for_constrained_decoding(tmp_path):
    lake = Lake(tmp_path / "lake")
    ingest(lake, [write(tmp_path / "s.csv", HEADER + "x,1,2,3\ny,1,5,4\nz,9,0,0\n")], "algr-item-sid", build_id="s")
    store = FeatureStore(lake)
    prefixes = store.valid_prefixes("s", tmp_path / "prefixes.npz")
    vocab = 3 * 8192
    assert [len(prefixes[level]) for level in (1, 2, 3)] == [2, 3, 3]
    assert is_valid_prefix(prefixes, [1], vocab) and is_valid_prefix(prefixes, [1, 8197], vocab)
    assert is_valid_prefix(prefixes, [1, 8194, 16387], vocab)
    assert not is_valid_prefix(prefixes, [2], vocab) and not is_valid_prefix(prefixes, [1, 8194, 16388], vocab)
    saved = np.load(tmp_path / "prefixes.npz")
    assert int(saved["vocabulary_size"]) == vocab and saved["level_3"].tolist() == prefixes[3].tolist()


def _covering(lake: Lake, build: str, day: str) -> None:
    row = lake.scan("sid_builds").filter(pl.col("build_id") == build).collect()
    lake.merge(
        "sid_builds",
        row.with_columns(status=pl.lit("published"), inputs=pl.lit(json.dumps({"data_through": day}))),
        run_id=build,
    )


def test_lookups_before_any_build_say_why(tmp_path):
    lake = Lake(tmp_path / "lake")
    before = dt.datetime.now(dt.UTC)
    time.sleep(0.05)
    ingest(lake, [write(tmp_path / "b1.csv", HEADER + "x,1,2,3\n")], "algr-item-sid", build_id="b1")
    store = FeatureStore(lake)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LookupError, match="no SID build was published yet"):
            store.sids(["x"])
        _publish(lake, "b1")
        with pytest.raises(LookupError, match=r"no SID build was published by .* \(the first was published at"):
            store.sids(["x"], as_of=before)
        with pytest.raises(LookupError, match="item_sids did not exist yet"):
            store.sids(["x"], build_id="b1", as_of=before)


def test_training_frames_by_data_day_and_by_publication(tmp_path):
    lake = Lake(tmp_path / "lake")
    ingest(lake, [write(tmp_path / "b1.csv", HEADER + "x,1,2,3\n")], "algr-item-sid", build_id="b1")
    _covering(lake, "b1", "2025-01-02")
    ingest(lake, [write(tmp_path / "b2.csv", HEADER + "x,7,7,7\n")], "algr-item-sid", build_id="b2")
    _covering(lake, "b2", "2025-01-04")
    days = [dt.datetime(2025, 1, d, 12, tzinfo=dt.UTC) for d in (1, 2, 3, 4, 9)]
    events = pl.DataFrame({"user_id": "u", "item_id": ["x", "x", "x", "y", "x"], "event_ts": days})
    store = FeatureStore(lake)
    assert store.timeline()["data_through"].cast(pl.String).to_list() == ["2025-01-02", "2025-01-04"]
    with pytest.warns(UserWarning, match="1 of 5 events have no SID: their items are not in their event's build"):
        frame = store.training_frame(events)
    assert frame["build_id"].to_list() == ["b1", "b1", "b2", "b2", "b2"]
    assert frame["sid"].to_list() == ["C1C8194C16387"] * 2 + ["C7C8199C16391", None, "C7C8199C16391"]
    with pytest.warns(UserWarning, match=r"5 of 5 events have no SID: no build was published by their time"):
        by_publication = store.training_frame(events, by="published_at")
    assert by_publication["sid"].null_count() == 5
    with pytest.raises(ValueError, match="by='event'"):
        store.training_frame(events, by="event")

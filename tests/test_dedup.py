"""The ingest's de-duplication keeps the first occurrence of each key, within a block and across blocks."""

import numpy as np
import polars as pl

from ingest.polars_engine import Deduplicator


def _events(seed: int, n: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "user_id": [f"u{v}" for v in rng.integers(0, 40, n)],
            "item_id": [f"i{v}" for v in rng.integers(0, 30, n)],
            "behavior": rng.choice(["pv", "buy"], n).tolist(),
            "event_ts": rng.integers(0, 3, n),
            "line": np.arange(n),
        }
    )


def test_first_occurrence_kept_across_blocks():
    frame = _events(0, 3000)  # 40 * 30 * 2 * 3 = 7200 keys: many repeats within and across blocks
    keys = ["user_id", "item_id", "behavior", "event_ts"]
    dedup = Deduplicator(keys)
    kept, dups = zip(*(dedup.split(frame.slice(start, 700)) for start in range(0, frame.height, 700)), strict=True)
    expected = frame.filter(pl.struct(keys).is_first_distinct())
    assert pl.concat(kept)["line"].to_list() == expected["line"].to_list()
    assert sorted(pl.concat(dups)["line"].to_list()) == sorted(set(range(3000)) - set(expected["line"]))
    assert pl.concat(dups).height > 500


def test_clean_blocks_pass_through_and_a_later_repeat_is_caught():
    frame = pl.DataFrame({"user_id": [f"u{i}" for i in range(1000)], "line": range(1000)})
    dedup = Deduplicator(["user_id"])
    first, none = dedup.split(frame.slice(0, 500))
    second, again = dedup.split(pl.concat([frame.slice(500, 500), frame.slice(10, 1)]))
    assert first.height == 500 and none.height == 0
    assert second.height == 500 and again["line"].to_list() == [10]
    assert np.all(dedup.seen[1:] > dedup.seen[:-1]) and len(dedup.seen) == 1000

"""Examples are mapped to a build's SIDs in list order; unknown or malformed items are counted, not tokenised."""

import polars as pl

from publish.examples import map_to_sids

SIZES = [4, 8, 16]  # token offsets 0, 4, 12


def _examples(rows):
    return pl.DataFrame(
        rows,
        schema={
            "user_id": pl.String,
            "history": pl.List(pl.String),
            "target": pl.List(pl.String),
            "stage": pl.Int16,
            "split": pl.String,
            "ds": pl.String,
            "id_space": pl.String,
            "example": pl.String,
        },
    )


SIDS = pl.DataFrame(
    {"item_id": ["a", "b", "c"], "codes": [[0, 1, 2], [3, 7, 15], [1, 0, 0]]},
    schema={"item_id": pl.String, "codes": pl.List(pl.Int32)},
)


def test_item_ids_keep_their_order_and_unknowns_are_counted():
    out = map_to_sids(
        _examples(
            [
                {
                    "user_id": "u1",
                    "history": ["c", "zz", "a", "b"],
                    "target": ["b"],
                    "stage": 1,
                    "split": "train",
                    "ds": "2025-01-01",
                    "id_space": "item",
                    "example": "e1",
                },
                {
                    "user_id": "u2",
                    "history": [],
                    "target": ["nope"],
                    "stage": 1,
                    "split": "train",
                    "ds": "2025-01-01",
                    "id_space": "item",
                    "example": "e2",
                },
                {
                    "user_id": "u3",
                    "history": ["a", None],
                    "target": ["a", "c"],
                    "stage": 2,
                    "split": "test",
                    "ds": "2025-01-02",
                    "id_space": "item",
                    "example": "e3",
                },
            ]
        ),
        SIDS,
        SIZES,
    )
    assert out["history_codes"].to_list() == [[[1, 0, 0], [0, 1, 2], [3, 7, 15]], [], [[0, 1, 2]]]
    assert out["history_tokens"].to_list() == [[1, 4, 12, 0, 5, 14, 3, 11, 27], [], [0, 5, 14]]
    assert out["history_unknown"].to_list() == [1, 0, 1]
    assert out["target_tokens"].to_list() == [[3, 11, 27], [], [0, 5, 14, 1, 4, 12]]
    assert out["target_unknown"].to_list() == [0, 1, 0]
    assert out["example"].to_list() == ["e1", "e2", "e3"]


def test_sid_strings_are_parsed_and_malformed_ones_are_unknown():
    out = map_to_sids(
        _examples(
            [
                {
                    "user_id": "u1",
                    "history": ["C1C4C12", "C1C4", "C9C4C12", "C3C11C27"],
                    "target": ["C0C5C14"],
                    "stage": 1,
                    "split": "train",
                    "ds": "2025-01-01",
                    "id_space": "sid",
                    "example": "g1",
                },
                {
                    "user_id": "u2",
                    "history": ["a"],
                    "target": ["C0C5C14"],
                    "stage": 1,
                    "split": "train",
                    "ds": "2025-01-01",
                    "id_space": "item",
                    "example": "g2",
                },
            ]
        ),
        SIDS,
        SIZES,
    )
    # "C1C4" has two tokens for three levels; "C9" is beyond level 1's four codes.
    assert out["history_codes"].to_list() == [[[1, 0, 0], [3, 7, 15]], [[0, 1, 2]]]
    assert out["history_unknown"].to_list() == [2, 0]
    assert out["target_codes"].to_list() == [[[0, 1, 2]], []]
    assert out["target_unknown"].to_list() == [0, 1]  # an item-space example does not parse C-strings


def test_examples_from_interactions_take_the_last_items_before_each_event():
    import datetime as dt

    from publish.examples import from_interactions

    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    events = pl.DataFrame(
        {
            "user_id": ["u2", "u1", "u1", "u1", "u1", "u2", "u3"],
            "item_id": ["x", "d", "a", "c", "b", "y", "z"],
            "event_ts": [t0, t0 + dt.timedelta(3), t0, t0 + dt.timedelta(2), t0 + dt.timedelta(1), t0, t0],
            "ds": ["2025-01-01", "2025-01-04", "2025-01-01", "2025-01-03", "2025-01-02", "2025-01-01", "2025-01-01"],
        }
    )
    out = from_interactions(events.lazy(), test_days=["2025-01-04"], max_history=2).collect()
    assert out["example"].to_list() == ["u1#1", "u1#2", "u1#3", "u2#1"]
    assert out["history"].to_list() == [["a"], ["a", "b"], ["b", "c"], ["x"]]  # u2's tie broken by item id
    assert out["target"].to_list() == [["b"], ["c"], ["d"], ["y"]]
    assert out["split"].to_list() == ["train", "train", "test", "train"]

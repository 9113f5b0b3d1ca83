"""Great Expectations suites catch planted bad rows in every table."""

import datetime as dt

import polars as pl
import pytest

from ingest.run import ingest
from lake import TABLES, Lake
from quality.expectations import Validator


@pytest.fixture(scope="module")
def validator(tmp_path_factory):
    return Validator(tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory, tiny_raw):
    lake = Lake(tmp_path_factory.mktemp("lake"))
    ingest(lake, [tiny_raw / "events"], "events")
    ingest(lake, [tiny_raw / "algr" / "origin_behavior"], "algr-sequences")
    ingest(lake, [tiny_raw / "items" / "items.csv"], "items")
    ingest(lake, [tiny_raw / "algr" / "item_emb"], "algr-item-emb")
    ingest(lake, [tiny_raw / "algr" / "item_sid"], "algr-item-sid")
    return lake


def _failed(outcome) -> set[str]:
    return {f["expectation"] for f in outcome.failures}


@pytest.mark.parametrize(
    "name", ["interactions", "user_sequences", "items", "item_embeddings", "item_sids", "sid_builds"]
)
def test_clean_tables_pass(validator, clean, name):
    sizes = {"algr-item_sid_final": [8192, 8192, 8192]}
    outcome = validator.validate(name, clean.scan(name).collect(), sizes)
    assert outcome.success, outcome.failures
    assert outcome.docs and outcome.docs.endswith("index.html")


def test_interactions_catch_behaviour_day_and_duplicates(validator, clean):
    rows = clean.scan("interactions").collect()
    bad = pl.concat(
        [
            rows,
            rows.head(1).with_columns(behavior=pl.lit("teleport")),
            rows.head(1).with_columns(ds=pl.lit("2030-01-01"), user_id=pl.lit("new")),
            rows.head(1),
        ]
    )
    outcome = validator.validate("interactions", bad)
    assert not outcome.success
    assert {
        "expect_column_values_to_be_in_set",
        "expect_column_pair_values_to_be_equal",
        "expect_compound_columns_to_be_unique",
    } <= _failed(outcome)
    assert outcome.exact["duplicate_keys"] == 1


def test_sequences_items_embeddings_sids_and_pairs_catch_their_bad_rows(validator, clean):
    seq = clean.scan("user_sequences").collect()
    bad_seq = pl.concat([seq, seq.head(1).with_columns(split=pl.lit("valid"), line=pl.lit(10**9, pl.Int64))])
    assert "expect_column_values_to_be_in_set" in _failed(validator.validate("user_sequences", bad_seq))

    items = clean.scan("items").collect()
    unhashed = items.head(1).with_columns(item_id=pl.lit("x"), content_hash=pl.lit(None, pl.String))
    bad_items = pl.concat([items, unhashed])
    assert "expect_column_values_to_not_be_null" in _failed(validator.validate("items", bad_items))

    emb = clean.scan("item_embeddings").collect()
    bad_emb = pl.concat(
        [
            emb,
            emb.head(1).with_columns(item_id=pl.lit("short"), dim=pl.lit(3, pl.Int32)),
            emb.head(1).with_columns(
                item_id=pl.lit("nan"),
                modalities=pl.lit("image+text"),
                embedding=pl.lit([float("nan")] * 512, pl.List(pl.Float32)),
            ),
        ]
    )
    failures = validator.validate("item_embeddings", bad_emb).failures
    assert {f["kwargs"]["column"] for f in failures} == {"embedding_len_ok", "finite", "unit_norm"}

    sids = clean.scan("item_sids").collect()
    far = sids.head(1).with_columns(item_id=pl.lit("far"), codes=pl.lit([1, 2, 9000], pl.List(pl.Int32)))
    bad_sids = pl.concat([sids, far])
    outcome = validator.validate("item_sids", bad_sids, {"algr-item_sid_final": [8192, 8192, 8192]})
    assert [f["kwargs"]["column"] for f in outcome.failures] == ["codes_in_range"]

    pairs = pl.DataFrame(
        {"item_id": ["a", "b"], "pair_item_id": ["a", "c"], "weight": [1.0, 0.0], "run_id": "r"},
        schema_overrides={"weight": pl.Float32},
    )
    columns = {f["kwargs"].get("column") for f in validator.validate("item_pairs", pairs).failures}
    assert columns == {"weight", "distinct_items"}


def test_bookkeeping_tables_catch_bad_values(validator):
    now = dt.datetime.now(dt.UTC)
    q = pl.DataFrame(
        {
            "source_file": ["f"],
            "line": [1],
            "raw": ["x"],
            "reason": [None],
            "run_id": ["r"],
            "quarantined_at": [now],
            "table": ["nope"],
            "ds": ["2025-01-01"],
        },
        schema_overrides={"reason": pl.String},
    )
    assert {f["kwargs"]["column"] for f in validator.validate("quarantine", q).failures} == {"reason", "table"}
    books = pl.DataFrame({"level": [1, 1], "code": [0, -1], "centroid": [[0.0], [1.0]], "build_id": ["b", "b"]})
    assert "expect_column_values_to_be_between" in _failed(validator.validate("codebooks", books))
    published = pl.DataFrame(
        {
            "dataset": ["d", "d"],
            "version": ["1", "1"],
            "path": "p",
            "manifest_sha256": "h",
            "build_id": "b",
            "inputs": "{}",
            "created_at": now,
            "run_id": "r",
        }
    )
    outcome = validator.validate("published_datasets", published)
    assert not outcome.success and outcome.exact["duplicate_keys"] == 1
    assert set(TABLES) >= {"quarantine", "codebooks", "published_datasets"}


def test_validators_sharing_a_gx_project_keep_validating(clean, tmp_path):
    """Each process keeps one Validator; another process's Validator on the same project rewrites its data sources
    (the UI runs two jobs at once); the first one keeps validating, and still fails bad rows."""
    first, second = Validator(tmp_path / "reports"), Validator(tmp_path / "reports")
    events = clean.scan("interactions").collect()
    assert first.validate("interactions", events).success
    assert second.validate("items", clean.scan("items").collect()).success
    assert first.validate("interactions", events).success
    bad = events.with_columns(pl.lit("zap").alias("behavior"))
    assert "expect_column_values_to_be_in_set" in _failed(first.validate("interactions", bad))


RACE = """
import sys
from lake import Lake
from quality.expectations import Validator
items = Lake(sys.argv[2]).scan("items").collect()
for _ in range(4):  # a fresh Validator each time: what separate runs of one lake do
    assert Validator(sys.argv[1]).validate("items", items).success
print("validated")
"""


def test_processes_validating_one_lake_at_once_take_turns_with_the_gx_project(clean, tmp_path):
    """Two UI runs at once failed in GX: one read the project's config while another rewrote it, or found the
    checkpoint another had just added ("already exists")."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path / "reports"), clean.root],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and out.strip() == "validated", err[-2000:]

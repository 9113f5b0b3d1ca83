"""AL-GR formats as published: sequences, Item-EMB, Item-SID, GR instruction TSV and npz."""

import base64

import numpy as np
import polars as pl
import pytest

from ingest.run import ingest
from ingest.sources.lines import SourceError
from lake import Lake
from tests.helpers import write


def _b64(values) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def test_sequences_are_reversed_to_oldest_first_with_stage_days(lake: Lake, tmp_path):
    folder = tmp_path / "s2_splits"
    write(folder / "s2_part0.csv", "user_history,target_item\nc;b;a,d\nz,y;x\n,e\nq;;r,s\n")
    write(tmp_path / "s2_test.csv", "user_history,target_item\nb;a,c\n")
    report = ingest(lake, [folder], "algr-sequences", ds="2025-03-01")
    assert (report.rows_read, report.rows_written, report.rows_quarantined) == (4, 3, 1)
    rows = lake.scan("user_sequences").sort("line").collect()
    assert rows["history"].to_list() == [["a", "b", "c"], ["z"], []]
    assert rows["target"].to_list() == [["d"], ["y", "x"], ["e"]]
    assert set(rows["stage"]) == {2} and set(rows["ds"]) == {"2025-03-02"} and set(rows["split"]) == {"train"}
    assert rows["user_id"][0] == "s2_part0.csv:2"
    assert lake.scan("quarantine").collect()["reason"].item() == "empty item id in user_history"
    ingest(lake, [tmp_path / "s2_test.csv"], "algr-sequences", ds="2025-03-01")
    test_rows = lake.scan("user_sequences").filter(pl.col("split") == "test").collect()
    assert test_rows["ds"].to_list() == ["2025-03-03"]
    assert lake.scan("user_sequences").collect().height == 4


def test_item_embeddings_decode_exactly_and_reject_bad_vectors(lake: Lake, tmp_path):
    good = np.linspace(-1, 1, 512, dtype=np.float32)
    nan = good.copy()
    nan[3] = np.nan
    text = (
        "base62_string,feature\n"
        f"aaa,{_b64(good)}\n"
        f"bbb,{_b64(good[:500])}\n"
        f"ccc,{_b64(nan)}\n"
        "ddd,***notbase64***\n"
        f",{_b64(good)}\n"
        f"aaa,{_b64(-good)}\n"
    )
    path = write(tmp_path / "item_emb.csv", text)
    report = ingest(lake, [path], "algr-item-emb")
    assert (report.rows_read, report.rows_written, report.rows_quarantined) == (6, 1, 5)
    row = lake.scan("item_embeddings").collect().row(0, named=True)
    assert row["item_id"] == "aaa" and row["model"] == "algr-item-emb" and row["dim"] == 512
    np.testing.assert_array_equal(np.array(row["embedding"], dtype=np.float32), good)
    reasons = dict(lake.scan("quarantine").select("line", "reason").collect().iter_rows())
    assert reasons[3] == "vector has 2000 bytes (500.0 float32 values), expected 512 values"
    assert reasons[4] == "vector has NaN or infinite values"
    assert reasons[5] == "feature is not valid base64"
    assert reasons[6] == "empty item id"
    assert reasons[7].startswith("duplicate record (same item_id")


def test_item_sids_render_algr_tokens_and_register_the_build(lake: Lake, tmp_path):
    path = write(
        tmp_path / "tiny_item_sid_final.csv",
        "base62_string,codebook_lv1,codebook_lv2,codebook_lv3\nA1,1,2,3\nB2,8191,0,17\nC3,,1,2\nD4,1,9000,2\n",
    )
    report = ingest(lake, [path], "algr-item-sid")
    assert (report.rows_written, report.rows_quarantined) == (2, 2)
    rows = lake.scan("item_sids").sort("item_id").collect()
    assert rows["sid"].to_list() == ["C1C8194C16387", "C8191C8192C16401"]
    assert rows["build_id"].unique().to_list() == ["algr-tiny_item_sid_final"]
    build = lake.scan("sid_builds").collect().row(0, named=True)
    assert build["status"] == "imported" and build["sizes"] == [8192, 8192, 8192]
    reasons = sorted(lake.scan("quarantine").collect()["reason"])
    assert reasons == ["codebook_lv2 9000 outside [0, 8192)", "missing code for codebook_lv1"]


def test_gr_instruction_tsv_becomes_sequences_in_sid_space(lake: Lake, tmp_path):
    text = (
        "id\tsystem\tuser\tanswer\n"
        "x1\tYou are a recommender, predict next.\tHistory: C1C8193C16385C2C8194C16386\tC3C8195C16387\n"
        "x2\tsys\tHistory: C1C8193\tC3C8195C16387\n"
        "x3\tsys\tHistory:\t\n"
    )
    path = write(tmp_path / "test_data" / "s1_test.tsv", text)
    report = ingest(lake, [path], "algr-gr-tsv")
    assert (report.rows_written, report.rows_quarantined) == (1, 2)
    row = lake.scan("user_sequences").collect().row(0, named=True)
    assert row["history"] == ["C1C8193C16385", "C2C8194C16386"] and row["target"] == ["C3C8195C16387"]
    assert (row["user_id"], row["id_space"], row["split"], row["stage"]) == ("x1", "sid", "test", 1)


def test_npz_streams_ids_and_embeds(lake: Lake, tmp_path):
    vectors = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    vectors[4, 0] = np.inf
    np.savez(tmp_path / "emb.npz", ids=np.array(["a", "b", "c", "d", "e"]), embeds=vectors)
    report = ingest(lake, [tmp_path / "emb.npz"], "npz")
    assert (report.rows_written, report.rows_quarantined) == (4, 1)
    got = lake.scan("item_embeddings").sort("item_id").collect()
    assert got["model"].unique().to_list() == ["npz-emb"]
    np.testing.assert_allclose(np.array(got["embedding"].to_list()), vectors[:4])


def test_pickled_npz_is_refused_unless_trusted(lake: Lake, tmp_path):
    vectors = np.eye(3, dtype=np.float32)
    path = tmp_path / "contrastive.npz"
    np.savez(path, itemEncID=np.array({"x": 0, "y": 1, "z": 2}, dtype=object), embeds=vectors)
    with pytest.raises(SourceError, match="--trust-pickle"):
        ingest(lake, [path], "npz")
    assert not lake.exists("item_embeddings")
    ingest(lake, [path], "npz", trust_pickle=True)
    got = lake.scan("item_embeddings").sort("item_id").collect()
    assert got["item_id"].to_list() == ["x", "y", "z"]
    assert got.filter(pl.col("item_id") == "y")["embedding"].item().to_list() == [0.0, 1.0, 0.0]


def test_generated_algr_files_ingest_in_every_format(lake: Lake, tiny_raw):
    for fmt, path in [
        ("algr-sequences", "algr/origin_behavior"),
        ("algr-gr-tsv", "algr/train_data"),
        ("algr-item-emb", "algr/item_emb"),
        ("algr-item-sid", "algr/item_sid"),
        ("npz", "algr/item_embeddings.npz"),
        ("items", "items/items.csv"),
    ]:
        report = ingest(lake, [tiny_raw / path], fmt)
        assert report.rows_quarantined == 0 and report.rows_written == report.rows_read > 0, fmt
    norms = (
        lake.scan("item_embeddings")
        .select(pl.col("embedding").list.eval(pl.element().pow(2)).list.sum().sqrt())
        .collect()
        .to_series()
    )
    assert (norms - 1).abs().max() < 1e-5

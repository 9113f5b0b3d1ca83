"""Image references in an items file cannot make sidforge read files outside the allowed folders."""

import os

import polars as pl
import pytest

from embeddings.data import ItemImages
from ingest.run import ingest
from lake import Lake
from tests.helpers import write

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def catalogue(tmp_path):
    folder = tmp_path / "landing" / "items"
    write(folder / "img" / "ok.png", PNG)
    secret = write(tmp_path / "secret.png", b"AWS_SECRET_ACCESS_KEY=do-not-leak")
    (folder / "img" / "link.png").symlink_to(secret)
    os.mkfifo(folder / "img" / "pipe.png")
    refs = {
        "good": "img/ok.png",
        "absolute_inside": str(folder / "img" / "ok.png"),
        "dotdot": "../../../../../../etc/passwd",
        "absolute": str(secret),
        "symlink": "img/link.png",
        "proc": "/proc/self/environ",
        "device": "/dev/zero",
        "file_uri": f"file://{secret}",
        "fifo": "img/pipe.png",
    }
    rows = "".join(f"{item},title {item},cat,{ref}\n" for item, ref in refs.items())
    return write(folder / "items.csv", "item_id,title,category,image\n" + rows), secret


def test_only_images_inside_the_items_folder_are_read(lake: Lake, catalogue):
    path, _ = catalogue
    report = ingest(lake, [path], "items")
    items = lake.scan("items").sort("item_id").collect()
    assert items["item_id"].to_list() == ["absolute_inside", "good"]
    assert items["image"].to_list() == [PNG, PNG]
    quarantine = lake.scan("quarantine").sort("line").collect()
    assert report.rows_quarantined == 7 == quarantine.height
    reasons = dict(zip(quarantine["raw"].str.split(",").list.first(), quarantine["reason"], strict=True))
    assert all(
        "outside the allowed folders" in reasons[k]
        for k in ("dotdot", "absolute", "symlink", "proc", "device", "file_uri")
    )
    assert "not a regular file" in reasons["fifo"]
    table = lake.scan("items").select(pl.col("image").bin.contains(b"SECRET").any()).collect().item()
    assert not table


def test_an_allowed_root_opens_another_folder(lake: Lake, catalogue):
    from ingest.sources.limits import Limits

    path, secret = catalogue
    ingest(lake, [path], "items", limits=Limits.from_environment({"SIDFORGE_IMAGE_ROOTS": str(secret.parent)}))
    items = lake.scan("items").collect()
    assert {"absolute", "symlink", "file_uri"} <= set(items["item_id"])


def test_encoding_never_opens_a_stored_uri(tmp_path):
    secret = write(tmp_path / "secret.png", PNG)
    images = ItemImages([None, None], [f"file://{secret}", "/etc/passwd"], preprocess=lambda img: img)
    assert [images[i][1:] for i in range(2)] == [
        (None, f"image file://{secret} is not stored in the lake (it was missing or not fetched at ingest)"),
        (None, "image /etc/passwd is not stored in the lake (it was missing or not fetched at ingest)"),
    ]


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving `tmp_path/www`, stopped afterwards."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    write(root / "small.png", PNG)
    write(root / "big.png", PNG * 4096)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_remote_images_are_fetched_only_when_enabled_and_capped(lake: Lake, tmp_path, server):
    from ingest.sources.limits import Limits

    path = write(tmp_path / "items.csv", f"item_id,title,image\nsmall,t,{server}/small.png\nbig,t,{server}/big.png\n")
    ingest(lake, [path], "items")
    assert lake.scan("items").select(pl.col("image").is_null().all()).collect().item()
    enabled = Limits.from_environment({"SIDFORGE_FETCH_IMAGES": "1", "SIDFORGE_MAX_RECORD_BYTES": "4096"})
    report = ingest(lake, [path], "items", limits=enabled)
    items = lake.scan("items").collect()
    assert items.filter(pl.col("item_id") == "small")["image"].to_list() == [PNG]
    assert report.rows_quarantined == 1
    assert "over the 4,096-byte limit" in lake.scan("quarantine").collect()["reason"][0]

"""Item catalogues with their images from an object store against the same files on local disk.

    python -m benchmarks.items_object_store [--scale demo] [--repeat 3] [--readers 1 16]

Generates the catalogue (`sidforge generate --scale ...`: an items CSV and one small PNG per item), uploads it to
a local S3 server (the moto server of the dev extras, started here on 127.0.0.1), and ingests `items` with the
polars engine from the local folder and from the bucket, with `--readers` concurrent image reads per block (1:
one request after another, as before). The median of `--repeat` runs is reported with the ratio bucket/local.
The moto server is a Python process answering each request in about a millisecond on the same cores, so the
ratio is a bound on what the client's concurrency achieves, not a cloud figure. Results go to
benchmarks/results/items_object_store-cpu.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from benchmarks.results_file import save
from ingest.run import ingest
from ingest.sources import items as items_source
from ingest.synthetic import generate
from lake import Lake, storage


def start_moto(port: int) -> subprocess.Popen:
    """A moto S3 server on 127.0.0.1:`port`, answering."""
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the moto server did not start")


def timed(location: str, lake_root: str) -> tuple[float, int]:
    """Seconds for one items ingest of `location` into a fresh lake, and the rows written."""
    started = time.perf_counter()
    report = ingest(Lake(lake_root), [location], "items")
    return time.perf_counter() - started, report.rows_written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="demo", help="generator scale (default demo)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--readers", type=int, nargs="+", default=[1, items_source.IMAGE_READERS])
    parser.add_argument("--port", type=int, default=5123)
    args = parser.parse_args()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{args.port}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    server = start_moto(args.port)
    rows: list[dict] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw"
            generate(raw, args.scale, seed=0)
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            storage.s3_filesystem(create_buckets=True).create_dir(bucket)
            remote = storage.upload_folder(raw / "items", f"s3://{bucket}/items")
            images = sum(1 for p in (raw / "items").rglob("*") if p.suffix == ".png")
            for readers in args.readers:
                items_source.IMAGE_READERS = readers
                figures: dict[str, list[float]] = {"local": [], "s3": []}
                for run in range(args.repeat + 1):  # the first run of each warms up and is not counted
                    for where, location in (("local", str(raw / "items")), ("s3", remote)):
                        seconds, written = timed(location, str(Path(tmp) / f"lake-{where}-{readers}-{run}"))
                        if run:
                            figures[where].append(seconds)
                local, s3 = statistics.median(figures["local"]), statistics.median(figures["s3"])
                rows.append(
                    {
                        "readers": readers,
                        "items": written,
                        "images": images,
                        "local_s": local,
                        "s3_s": s3,
                        "ratio": s3 / local,
                    }
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{'readers':>8}{'items':>8}{'local s':>10}{'s3 s':>10}{'s3/local':>10}")
    for row in rows:
        print(f"{row['readers']:>8}{row['items']:>8}{row['local_s']:>10.2f}{row['s3_s']:>10.2f}{row['ratio']:>10.2f}")
    save("items_object_store-cpu", {"scale": args.scale, "repeat": args.repeat, "results": rows})


if __name__ == "__main__":
    main()

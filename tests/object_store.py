"""A real S3 wire implementation on loopback for tests: the `moto` server, started once per session."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sidforge-test",
    "AWS_SECRET_ACCESS_KEY": "sidforge-test",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    """Run `moto.server` on 127.0.0.1 until the block ends; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the moto server on {endpoint} did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=30)


def objects(bucket: str) -> list[str]:
    """Every key in `bucket` on the S3 endpoint of the environment, sorted."""
    import pyarrow.fs as pafs

    from lake.storage import s3_filesystem

    infos = s3_filesystem().get_file_info(pafs.FileSelector(bucket, recursive=True))
    return sorted(i.path[len(bucket) + 1 :] for i in infos if i.type == pafs.FileType.File)

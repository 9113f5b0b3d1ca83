"""Two writers of the same partition at once: never both landing with duplicates, never a raw traceback, on a
local lake and on an object-store lake (the moto S3 server, where delta-rs commits with conditional puts)."""

import threading

import polars as pl
import pytest

from ingest.run import ingest
from lake import Lake
from lake.lake import ConcurrentWriteError
from tests.helpers import write

DAY1 = 1735689600


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path) -> Lake:
    """An empty lake in a temporary folder, or in a new bucket of the S3 server."""
    if request.param == "s3":
        return Lake(f"s3://{request.getfixturevalue('s3_bucket')}/lake")
    return Lake(tmp_path / "lake")


def _file(path, users):
    return write(
        path, "user_id,item_id,behavior,timestamp\n" + "".join(f"{u},i{n},pv,{DAY1 + n}\n" for n, u in enumerate(users))
    )


def _race(lake: Lake, inputs: list) -> list:
    outcomes: list = [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = ingest(lake, [inputs[i]], "events", ds="2025-01-01")
        except ConcurrentWriteError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


@pytest.mark.parametrize("existing", [False, True])
def test_the_same_file_twice_at_once_lands_once(lake: Lake, tmp_path, existing):
    path = _file(tmp_path / "a.csv", [f"u{i}" for i in range(50)])
    if existing:
        ingest(lake, [path], "events", ds="2025-01-01")
    for _ in range(3):
        outcomes = _race(lake, [path, path])
        assert all(not isinstance(o, ConcurrentWriteError) or "Run the command again" in str(o) for o in outcomes)
        rows = lake.scan("interactions").collect()
        assert rows.height == 50
        assert rows.select(pl.struct("user_id", "item_id").is_unique().all()).item()


def test_different_files_of_one_day_both_land(lake: Lake, tmp_path):
    a = _file(tmp_path / "a.csv", [f"a{i}" for i in range(30)])
    b = _file(tmp_path / "b.csv", [f"b{i}" for i in range(20)])
    outcomes = _race(lake, [a, b])
    assert all(o.rows_written for o in outcomes)
    assert lake.scan("interactions").collect().height == 50

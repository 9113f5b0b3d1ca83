"""Line streaming: exact line numbers across blocks, CRLF, compression, invalid UTF-8 set aside."""

import gzip

from ingest.sources.lines import iter_line_blocks
from tests.helpers import write


def _all(path, block_bytes):
    lines, bad = [], []
    for block in iter_line_blocks(path, block_bytes=block_bytes):
        lines += block.lines.rows()
        bad += block.bad_utf8
    return lines, bad


def test_numbers_survive_small_blocks_and_missing_final_newline(tmp_path):
    text = "".join(f"row{i},{'x' * (i % 7)}\n" for i in range(1, 200)) + "last"
    path = write(tmp_path / "a.csv", text)
    lines, bad = _all(path, block_bytes=64)
    assert [n for n, _ in lines] == list(range(1, 201))
    assert lines[0] == (1, "row1,x") and lines[-1] == (200, "last")
    assert bad == []


def test_crlf_and_gzip(tmp_path):
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(b"h1,h2\r\na,b\r\n"))
    lines, _ = _all(path, block_bytes=1 << 20)
    assert lines == [(1, "h1,h2"), (2, "a,b")]


def test_invalid_utf8_lines_are_reported_with_their_number(tmp_path):
    path = write(tmp_path / "a.csv", b"ok,1\nbad,\xff\xfe\nok,2\n")
    lines, bad = _all(path, block_bytes=1 << 20)
    assert lines == [(1, "ok,1"), (3, "ok,2")]
    assert bad == [(2, "bad,\\xff\\xfe")]


def test_blocks_stay_bounded_whatever_the_file_size(tmp_path):
    path = write(tmp_path / "big.csv", "user_id,item_id,behavior,timestamp\n" + "u,i,pv,1735732800\n" * 200_000)
    sizes = [b.lines.height for b in iter_line_blocks(path, block_bytes=1 << 16)]
    assert sum(sizes) == 200_001
    assert max(sizes) <= (1 << 16) // len("u,i,pv,1735732800\n") + 1

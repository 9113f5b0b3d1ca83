"""A text file split into spans of whole lines reads back as the whole file does, with the same line numbers."""

import gzip
from itertools import pairwise

from ingest.sources.lines import iter_byte_blocks, split_lines
from tests.helpers import write


def _lines(path, span=None, skip=0):
    out = []
    for first, data, count in iter_byte_blocks(path, block_bytes=256, skip=skip, span=span):
        text = data.decode().split("\n")[:count]
        out += list(zip(range(first, first + count), text, strict=True))
    return out


def test_spans_cover_the_file_and_number_lines_like_the_whole(tmp_path):
    body = "".join(f"u{i},{'x' * (i % 13)},pv,{1735732800 + i}\n" for i in range(2000))
    path = write(tmp_path / "events.csv", "user_id,item_id,behavior,timestamp\n" + body + "tail,no,newline,1")
    spans = split_lines(path, pieces=4, min_bytes=4096)
    assert len(spans) == 4
    assert spans[0].start == 0 and spans[-1].end == path.stat().st_size
    assert all(a.end == b.start for a, b in pairwise(spans))
    whole = _lines(path, skip=1)
    pieces = [line for span in spans for line in _lines(path, span, skip=1)]
    assert pieces == whole
    assert whole[0] == (2, "u0,,pv,1735732800") and whole[-1] == (2002, "tail,no,newline,1")


def test_small_or_compressed_files_are_one_span(tmp_path):
    small = write(tmp_path / "small.csv", "a\n" * 100)
    assert [(s.start, s.end, s.first_line) for s in split_lines(small, 4, min_bytes=4096)] == [(0, 200, 1)]
    packed = tmp_path / "big.csv.gz"
    packed.write_bytes(gzip.compress(b"a,b\n" * 100_000))
    assert len(split_lines(packed, 4, min_bytes=1024)) == 1


def test_spark_tasks_split_plain_text_only(tmp_path, monkeypatch):
    from ingest import spark_engine
    from ingest.formats import get_format

    plain = write(tmp_path / "events.csv", "user_id,item_id,behavior,timestamp\n" + "u,i,pv,1735732800\n" * 5000)
    packed = tmp_path / "events.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    monkeypatch.setattr(spark_engine, "SPLIT_BYTES", 4096)
    tasks = spark_engine._tasks(get_format("events"), [str(plain), str(packed)], pieces=2)
    assert [(t[0], t[2] is None) for t in tasks] == [(0, False), (0, False), (1, True)]  # gzip: one task, no span
    assert tasks[0][2:] == (0, tasks[1][2], 1) and tasks[1][3] == plain.stat().st_size
    assert spark_engine._tasks(get_format("algr-gr-tsv"), [str(plain)], pieces=2)[0][2:] == (None, None, None)

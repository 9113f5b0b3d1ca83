"""Progress lines of long loops: the first and the last call of a step always, in between at most one line per
interval, each with the count, the share, the rate and the elapsed time."""

from lake.progress import ProgressLines


def test_lines_are_throttled_per_step_and_the_last_is_always_written():
    now = [0.0]
    lines: list[str] = []
    progress = ProgressLines(lines.append, every=10.0, clock=lambda: now[0])
    for done, at in ((1, 0.0), (2, 4.0), (3, 9.0), (4, 12.0), (5, 13.0)):
        now[0] = at
        progress("epochs", done, 5)
    assert lines == ["epochs: 1/5 (20 %, 0 s)", "epochs: 4/5 (80 %, 0.3/s, 12 s)", "epochs: 5/5 (100 %, 0.4/s, 13 s)"]
    now[0] = 14.0
    progress("batches", 1, 1000)
    assert lines[-1] == "batches: 1/1,000 (0 %, 0 s)"  # another step keeps its own clock

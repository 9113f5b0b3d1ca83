"""Progress of long loops as lines a person can read while they run.

Libraries take a plain callable, `progress(step, done, total)`, and call it after each epoch or batch; they import
nothing for it. `ProgressLines` turns those calls into throttled lines for any sink: the CLI prints them, the
Dagster assets send them to `context.log.info`, so a run page shows that work is moving.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str, int, int], None]


class ProgressLines:
    """A `Progress` that writes "step: done/total (percent, rate/s, elapsed)" to `write`: the first call of a
    step, its last (done == total), and otherwise at most one line every `every` seconds per step."""

    def __init__(
        self, write: Callable[[str], object], every: float = 10.0, clock: Callable[[], float] = time.monotonic
    ):
        self.write, self.every, self.clock = write, every, clock
        self._started: dict[str, float] = {}
        self._written: dict[str, float] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        now = self.clock()
        started = self._started.setdefault(step, now)
        last = self._written.get(step)
        if last is not None and done < total and now - last < self.every:
            return
        self._written[step] = now
        elapsed = now - started
        rate = f", {done / elapsed:,.1f}/s" if elapsed > 0 else ""
        share = f" ({100 * done / total:.0f} %{rate}, {elapsed:.0f} s)" if total else ""
        self.write(f"{step}: {done:,}/{total:,}{share}")

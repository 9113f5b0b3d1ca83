"""Peak resident memory of a call: the process's resident set sampled every 5 ms while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sid_index.heap import release_free_memory

T = TypeVar("T")


def rss() -> int:
    """This process's resident set in bytes (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def peak_above_start(call: Callable[[], T]) -> tuple[T, int, float]:
    """Run `call`; returns its result, the peak resident bytes above those before the call, and its seconds."""
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    release_free_memory()  # what earlier work freed but the heap kept would otherwise be reused unseen
    base = rss()
    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        result = call()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return result, max(peak[0], rss()) - base, seconds

"""Crash drills: a process kills itself (SIGKILL, as a power cut would) at a named step of a write path, or
holds there until a file appears (a long run, for the drills that outlast a limit)."""

from __future__ import annotations

import os
import signal
import time

ENV = "SIDFORGE_CRASH_AT"
HOLD_ENV = "SIDFORGE_HOLD_AT"  # "<step>=<file>": wait at <step> until <file> exists


def crash_point(step: str) -> None:
    """Die here, without any cleanup, when `$SIDFORGE_CRASH_AT` names `step`; wait here while
    `$SIDFORGE_HOLD_AT` names `step` and its file does not exist yet (used by the drills)."""
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
    held, _, release = os.environ.get(HOLD_ENV, "").partition("=")
    while held == step and release and not os.path.exists(release):
        time.sleep(0.05)

"""Crash drills: a process kills itself (SIGKILL, as a power cut would) at a named step of a write path."""

from __future__ import annotations

import os
import signal

ENV = "SIDFORGE_CRASH_AT"


def crash_point(step: str) -> None:
    """Die here, without any cleanup, when `$SIDFORGE_CRASH_AT` names `step` (used by the kill drills)."""
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)

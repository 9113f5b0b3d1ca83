"""Intent records of in-flight writes, so that a killed run is finished or cleaned up by the next one.

A run records `writing` (with its staging folders) before it stages anything, and `committing` (with the
whole commit plan) before its first commit. A later run rolls a dead run's `committing` plan forward (the
commits are idempotent through their app transactions) and removes a dead `writing` run's staging.
Journals live under `<lake>/_staging/_journal/<run_id>.json` and are written to a temporary name first.

A run holds its intent as a `Claim`: a heartbeat rewrites it every quarter of the stale limit, so a run on
another host counts as dead only once it has stopped refreshing its claim for the whole limit
(`$SIDFORGE_JOURNAL_STALE_SECONDS`, default an hour), however long it runs.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

import pyarrow.fs as pafs

from lake.lake import Lake

FOLDER = ("_staging", "_journal")
STALE_SECONDS = 3600.0  # a run of another host counts as dead once its claim went this long unrefreshed
STALE_ENV = "SIDFORGE_JOURNAL_STALE_SECONDS"


def stale_seconds() -> float:
    """How long a claim of another host may go unrefreshed before its run counts as dead."""
    return float(os.environ.get(STALE_ENV, STALE_SECONDS))


@dataclass
class Intent:
    """One run's intent: what it stages and, once planned, the commits it will make."""

    run_id: str
    table: str
    state: str = "writing"
    staging: list[str] = field(default_factory=list)
    plan: dict = field(default_factory=dict)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    updated: float = field(default_factory=time.time)

    def alive(self) -> bool:
        """Whether the run's process may still be working (same host: its pid exists; else: its claim was
        refreshed within the stale limit)."""
        if self.host != socket.gethostname():
            return time.time() - self.updated < stale_seconds()
        return self.pid == os.getpid() or process_running(self.pid)


def process_running(pid: int) -> bool:
    """Whether a process with this id exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _folder(lake: Lake) -> tuple[pafs.FileSystem, str]:
    fs, root = lake.filesystem()
    return fs, "/".join([root, *FOLDER])


def record(lake: Lake, intent: Intent) -> None:
    """Write (or advance) a run's intent atomically: a temporary file, then a rename."""
    fs, folder = _folder(lake)
    fs.create_dir(folder, recursive=True)
    intent.updated = time.time()
    tmp = f"{folder}/.{intent.run_id}.{uuid.uuid4().hex[:8]}.tmp"
    with fs.open_output_stream(tmp) as out:
        out.write(json.dumps(asdict(intent)).encode())
    fs.move(tmp, f"{folder}/{intent.run_id}.json")


def pending(lake: Lake) -> list[Intent]:
    """Every recorded intent, oldest first; unreadable (torn) temporary files are not intents."""
    fs, folder = _folder(lake)
    if fs.get_file_info(folder).type != pafs.FileType.Directory:
        return []
    intents = []
    for info in fs.get_file_info(pafs.FileSelector(folder)):
        if info.base_name.endswith(".json") and not info.base_name.startswith("."):
            with fs.open_input_stream(info.path) as fh:
                intents.append(Intent(**json.loads(fh.read())))
    return sorted(intents, key=lambda i: i.updated)


def clear(lake: Lake, intent: Intent) -> None:
    """Remove a run's staging folders, then its intent."""
    fs, folder = _folder(lake)
    for path in intent.staging:
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)
    target = f"{folder}/{intent.run_id}.json"
    if fs.get_file_info(target).type == pafs.FileType.File:
        fs.delete_file(target)


class Claim:
    """A run's intent, recorded now and kept alive by a heartbeat thread until `release` (or `stop`)."""

    def __init__(self, lake: Lake, intent: Intent):
        self.lake, self.intent = lake, intent
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        record(lake, intent)
        self._beat = threading.Thread(target=self._refresh, name=f"sidforge-claim-{intent.run_id}", daemon=True)
        self._beat.start()

    def _refresh(self) -> None:
        while not self._stopped.wait(stale_seconds() / 4):
            with self._lock:
                if self._stopped.is_set():
                    return
                try:
                    record(self.lake, self.intent)
                except OSError:  # a store that failed once: the next beat tries again
                    continue

    def advance(self, state: str, plan: dict) -> None:
        """Record the run's next state (and its plan) at once."""
        with self._lock:
            self.intent.state, self.intent.plan = state, plan
            record(self.lake, self.intent)

    def stop(self) -> None:
        """Stop refreshing the claim (the intent stays for `recover` to finish or clean up)."""
        with self._lock:
            self._stopped.set()
        self._beat.join()

    def release(self) -> None:
        """Stop refreshing and remove the run's staging and intent."""
        self.stop()
        clear(self.lake, self.intent)

"""A Spark standalone cluster on 127.0.0.1 for tests: pyspark's own master and workers (`bin/spark-class`).

Each worker runs in its own mount namespace (`unshare -m`) where /tmp and the repository are empty tmpfs
mounts and only the virtualenv shows through: its tasks cannot open the driver's or another worker's
temporary folders, nor import the project from disk, so everything they read, write or run must reach them
the way it would reach another host (object storage, the code shipped with the session).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pyspark

from tests.object_store import free_port

REPOSITORY = Path(__file__).resolve().parent.parent
SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"


def can_isolate() -> bool:
    """Whether this machine lets the test give a worker its own mount namespace (root with `unshare`)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _wait(check, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready within {seconds} s; log:\n{log.read_text()[-3000:]}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _master_state(ui_port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return json.load(response)
    except OSError:
        return {}


def _alive_workers(ui_port: int) -> int:
    return int(_master_state(ui_port).get("aliveworkers", 0))


_UI_PORTS: dict[str, int] = {}  # master URL -> its web UI port, while the cluster runs


def applications(master: str) -> list[str]:
    """The names of every application (running or finished) the master at `master` has seen, oldest first."""
    state = _master_state(_UI_PORTS[master])
    apps = state.get("completedapps", []) + state.get("activeapps", [])
    return [a["name"] for a in sorted(apps, key=lambda a: a["starttime"])]


def _isolated(command: list[str], hold: Path) -> list[str]:
    """`command` in a new mount namespace that hides /tmp and the repository but keeps the virtualenv."""
    venv = Path(sys.prefix)
    steps = [
        "mount --make-rprivate /",
        f"mount --bind {shlex.quote(str(venv))} {shlex.quote(str(hold))}",
        "mount -t tmpfs tmpfs /tmp",
        f"mount -t tmpfs tmpfs {shlex.quote(str(REPOSITORY))}" if not REPOSITORY.is_relative_to("/tmp") else "true",
        f"mkdir -p {shlex.quote(str(venv))}",
        f"mount --bind {shlex.quote(str(hold))} {shlex.quote(str(venv))}",
        "exec " + shlex.join(command),
    ]
    return ["unshare", "-m", "sh", "-c", " && ".join(steps)]


@contextmanager
def standalone_cluster(
    worker_env: Mapping[str, str], cores: int = 2, memory: str = "3g", workers: int = 1
) -> Iterator[str]:
    """A master and `workers` isolated workers (`cores`, `memory` each, each with its own /tmp and working
    folder) until the block ends; yields the master URL. `worker_env` is the workers' (and so their executors')
    own environment, e.g. their object-store credentials."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_HOME": str(SPARK_CLASS.parent.parent)}
    port, ui_port = free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="sidforge-cluster-logs-", dir="/var/tmp"))
    holds = [Path(tempfile.mkdtemp(prefix="sidforge-venv-", dir="/var/tmp")) for _ in range(workers)]
    master_cmd = [str(SPARK_CLASS), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
    master_cmd += ["--port", str(port), "--webui-port", str(ui_port)]
    worker_cmd = [str(SPARK_CLASS), "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}"]
    worker_cmd += ["--host", "127.0.0.1", "--cores", str(cores), "--memory", memory, "--work-dir", "/tmp/spark-worker"]
    processes: list[subprocess.Popen] = []
    try:
        with (logs / "master.log").open("w") as out:
            processes.append(
                subprocess.Popen(master_cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            )
        _wait(lambda: _listening(port), 90, "Spark master", logs / "master.log")
        for number, hold in enumerate(holds):
            with (logs / f"worker-{number}.log").open("w") as out:
                processes.append(
                    subprocess.Popen(
                        _isolated([*worker_cmd, "--webui-port", str(free_port())], hold),
                        env={**env, **worker_env},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        _wait(lambda: _alive_workers(ui_port) == workers, 90, "Spark workers", logs / "worker-0.log")
        master = f"spark://127.0.0.1:{port}"
        _UI_PORTS[master] = ui_port
        yield master
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        _UI_PORTS.pop(f"spark://127.0.0.1:{port}", None)
        shutil.rmtree(logs, ignore_errors=True)
        for hold in holds:
            hold.rmdir()

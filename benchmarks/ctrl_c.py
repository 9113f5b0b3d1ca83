"""How long `sidforge dev` takes to stop after Ctrl-C: webserver, daemon and code server, all of its processes.

    python -m benchmarks.ctrl_c [--repeat 3]

In a fresh folder (no demo: the UI serves an empty lake), starts `sidforge dev` on a free port in its own process
group, waits until the webserver answers, sends one SIGINT to the group (what Ctrl-C in a terminal does), and
times until no process of the group is left. The test (`tests/test_ui.py::test_ctrl_c_stops_everything`) only
requires that they all exit. Results go to benchmarks/results/ctrl_c-cpu.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.results_file import save

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True, check=False).stdout.split()


def one_stop(folder: Path) -> dict[str, float]:
    """Seconds until `sidforge dev` answers, and from one SIGINT until its whole process group is gone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDFORGE_", "DAGSTER_"))}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    port = _free_port()
    started = time.monotonic()
    with (folder / "dev.log").open("w") as log:
        proc = subprocess.Popen(
            [str(BIN / "sidforge"), "dev", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() - started > 300:
                    raise RuntimeError(f"sidforge dev did not answer; see {folder / 'dev.log'}") from None
                time.sleep(0.2)
        ready = time.monotonic() - started
        stopping = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        while (proc.poll() is None or _group(proc.pid)) and time.monotonic() - stopping < 300:
            time.sleep(0.05)
        return {"ready_s": ready, "stop_s": time.monotonic() - stopping, "left": len(_group(proc.pid))}
    finally:
        if _group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_stop(Path(tmp)))
    stop = statistics.median(r["stop_s"] for r in runs)
    ready = statistics.median(r["ready_s"] for r in runs)
    print(f"ready after {ready:.1f} s; all processes gone {stop:.1f} s after Ctrl-C")
    print(f"processes left after 300 s: {max(r['left'] for r in runs)}")
    save("ctrl_c-cpu", {"repeat": args.repeat, "runs": runs, "median_stop_s": stop})


if __name__ == "__main__":
    main()

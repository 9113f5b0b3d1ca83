"""Spark's start-up cost on a standalone cluster: what one application per run saves every step after the first.

    python -m benchmarks.spark_startup [--workers 2] [--repeat 3]

Starts pyspark's own master and `--workers` workers on 127.0.0.1 (1 core and 2 GB each, each in its own mount
namespace: `tests.spark_cluster`, as the cluster tests use; needs root and `unshare`), then for each repeat creates
the session as `lake.spark.spark_session` does (code archive shipped), and times: the session's creation, the
executors' registration (all workers), the first job (a 2-task count through Python workers), and the same job
again in the warm session, which is what every later step of the same run pays. The first repeat also starts
the driver's JVM (a new process's first application); later ones reuse it, as a second application of the same
process would. Results go to benchmarks/results/spark_startup-cpu.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.results_file import save
from lake.spark import spark_session
from tests.spark_cluster import can_isolate, standalone_cluster


def _executors(session) -> int:
    return session.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # the driver is listed too


def _job(session) -> float:
    started = time.perf_counter()
    session.sparkContext.parallelize(range(1000), 2).map(lambda x: x * 2).count()
    return time.perf_counter() - started


def one_run(master: str, workers: int) -> dict[str, float]:
    """Seconds of each start-up step of one application at `master`."""
    started = time.perf_counter()
    session = spark_session(master, app_name="sidforge-startup")
    created = time.perf_counter() - started
    deadline = time.monotonic() + 300
    while _executors(session) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    registered = time.perf_counter() - started
    first = _job(session)
    warm = _job(session)
    session.stop()
    return {"session_s": created, "executors_s": registered, "first_job_s": first, "warm_job_s": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not can_isolate():
        raise SystemExit("needs root and unshare to start isolated workers")
    with standalone_cluster({}, cores=1, memory="2g", workers=args.workers) as master:
        runs = [one_run(master, args.workers) for _ in range(args.repeat)]
    cold, later = runs[0], runs[1:] or runs
    medians = {k: statistics.median(r[k] for r in later) for k in cold}
    print(f"{'step':<16}{'new JVM s':>10}{'JVM up s':>10}")
    for key in cold:
        print(f"{key:<16}{cold[key]:>10.2f}{medians[key]:>10.2f}")
    print(f"an application's start costs {cold['executors_s'] + cold['first_job_s']:.1f} s in a new process")
    payload = {"workers": args.workers, "repeat": args.repeat, "runs": runs, "cold": cold, "medians_later": medians}
    save("spark_startup-cpu", payload)


if __name__ == "__main__":
    main()

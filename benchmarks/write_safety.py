"""Write-path safety figures: hostile files in bounded memory and time, and same-day concurrent ingests.

    python -m benchmarks.write_safety [--bomb-gb 1] [--flat-mb 128 1024] [--tries 20]

- a gzip of N GB of zeros (`.csv.gz`), and files of M MB with no newline: each ingested by `sidforge ingest`
  in a child process, whose peak RSS and wall time are reported with the quarantine reason;
- `--tries` rounds of two `sidforge ingest` processes started together on the same new day's file: rows
  in the day against the file's, duplicates counted, exit codes.
Results are printed and saved to benchmarks/results/write_safety-cpu.json.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

from benchmarks.results_file import save
from lake import Lake

ROOT = Path(__file__).resolve().parents[1]
HEADER = b"user_id,item_id,behavior,timestamp\n"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def measured_ingest(path: Path, lake: Path) -> dict:
    """Ingest one file in a child process: seconds, the child's own peak RSS (MiB), exit code, quarantine."""
    command = _cli("ingest", str(path), "--format", "events", "--lake", str(lake))
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        f"code = subprocess.run({command!r}, capture_output=True).returncode; "
        "print(code, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    code, seconds, peak_kib = done.stdout.split()
    reasons = Lake(lake).scan("quarantine").select("reason").collect()["reason"].to_list()
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "seconds": round(float(seconds), 2),
        "peak_rss_mib": round(int(peak_kib) / 1024),
        "exit": int(code),
        "quarantine": reasons[:2],
    }


def gzip_bomb(folder: Path, gigabytes: float) -> Path:
    """A `.csv.gz` of a header and `gigabytes` GB of zeros, written in a stream."""
    path = folder / "zeros.csv.gz"
    block = b"\0" * (16 << 20)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(HEADER)
        for _ in range(int(gigabytes * (1 << 30)) // len(block)):
            out.write(block)
    return path


def flat_file(folder: Path, megabytes: int) -> Path:
    """A CSV whose body is `megabytes` MB with no newline."""
    path = folder / f"flat-{megabytes}mb.csv"
    with path.open("wb") as out:
        out.write(HEADER)
        for _ in range(megabytes):
            out.write(b"x" * (1 << 20))
    return path


def race(folder: Path, tries: int) -> dict:
    """`tries` rounds of two ingest processes of one file into one new day, started together."""
    day = folder / "day.csv"
    day.write_bytes(HEADER + b"".join(b"u%d,i%d,pv,%d\n" % (i, i, 1735689600 + i) for i in range(2000)))
    rounds = []
    for attempt in range(tries):
        lake = folder / f"race-{attempt}"
        procs = [
            subprocess.Popen(
                _cli("ingest", str(day), "--format", "events", "--lake", str(lake), "--ds", "2025-01-01"),
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        codes = [p.wait() for p in procs]
        rows = Lake(lake).scan("interactions").collect()
        rounds.append(
            {
                "exit": codes,
                "rows": rows.height,
                "duplicates": rows.height - rows.select("user_id", "item_id", "event_ts").unique().height,
            }
        )
    return {
        "tries": tries,
        "file_rows": 2000,
        "rounds_with_duplicates": sum(r["duplicates"] > 0 for r in rounds),
        "rounds_with_missing_rows": sum(r["rows"] < 2000 for r in rounds),
        "rounds_both_exit_0": sum(r["exit"] == [0, 0] for r in rounds),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-gb", type=float, default=1.0)
    parser.add_argument("--flat-mb", type=int, nargs="*", default=[128, 1024])
    parser.add_argument("--tries", type=int, default=20)
    args = parser.parse_args()
    results: dict = {"hostile": [], "concurrent": None}
    with tempfile.TemporaryDirectory(prefix="sidforge-safety-") as tmp:
        work = Path(tmp)
        files = [gzip_bomb(work, args.bomb_gb)] + [flat_file(work, mb) for mb in args.flat_mb]
        for n, path in enumerate(files):
            row = measured_ingest(path, work / f"lake-{n}")
            results["hostile"].append(row)
            print(
                f"{row['file']:<22}{row['bytes']:>14,} B  {row['seconds']:>7.2f} s  peak {row['peak_rss_mib']:>6} MiB"
                f"  exit {row['exit']}  {row['quarantine']}"
            )
            path.unlink()
        if args.tries:
            results["concurrent"] = race(work, args.tries)
            c = results["concurrent"]
            print(
                f"concurrent same-day ingests: {c['tries']} tries, {c['rounds_with_duplicates']} with duplicates, "
                f"{c['rounds_with_missing_rows']} with missing rows, both exit 0 in {c['rounds_both_exit_0']}"
            )
    save("write_safety-cpu", results)


if __name__ == "__main__":
    pl.Config.set_tbl_rows(50)
    main()

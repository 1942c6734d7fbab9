"""Time the dataset-ingest engine against ``pyarrow.csv.read_csv`` on one CSV file.

usage: python benchmarks/ingest_engine.py FILE.csv [--rounds N]

Each run is a fresh process (so peak RSS includes the interpreter and imports,
as ``/usr/bin/time -v`` reports it); the variants alternate round by round so
machine noise hits both alike. ``read_csv`` only parses into an in-memory
table; ``ingest_file`` parses, types, writes Parquet and profiles.
Generate the reference file with ``shared/bench/ingest/gen_csv.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READ_CSV = """
import sys, pyarrow.csv as csv
t = csv.read_csv(sys.argv[1])
print(t.num_rows)
"""

INGEST = """
import sys
from pathlib import Path
from openmaas.ml.data import ingest_file
r = ingest_file(Path(sys.argv[1]), "csv", Path(sys.argv[2]))
print(r.n_rows)
"""


def run(code: str, *args: str) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode().strip() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"benchmark child failed with status {status}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024,
        "rows": float(out.splitlines()[-1]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    size_mb = a.csv.stat().st_size / 1e6
    results: dict[str, list[dict[str, float]]] = {"read_csv": [], "ingest_file": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.parquet")
        for i in range(a.rounds):
            results["read_csv"].append(run(READ_CSV, str(a.csv)))
            results["ingest_file"].append(run(INGEST, str(a.csv), out))
            r, g = results["read_csv"][-1], results["ingest_file"][-1]
            print(f"round {i + 1}: read_csv {r['wall']:.2f}s, ingest_file {g['wall']:.2f}s",
                  file=sys.stderr)  # fmt: skip
        parquet_mb = Path(out).stat().st_size / 1e6
    base = statistics.median(r["wall"] for r in results["read_csv"])
    print(f"\nfile: {a.csv} ({size_mb:,.1f} MB), {a.rounds} rounds, median (min-max)\n")
    print("| variant | wall s | MB/s | CPU s | peak RSS MB | wall / read_csv |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        walls = [r["wall"] for r in runs]
        med = statistics.median(walls)
        cpu = statistics.median(r["cpu"] for r in runs)
        rss = statistics.median(r["rss"] for r in runs)
        print(
            f"| {name} | {med:.2f} ({min(walls):.2f}-{max(walls):.2f}) | {size_mb / med:.0f} "
            f"| {cpu:.1f} | {rss:.0f} | {med / base:.2f} |"
        )
    print(f"\nParquet output: {parquet_mb:,.1f} MB")


if __name__ == "__main__":
    main()

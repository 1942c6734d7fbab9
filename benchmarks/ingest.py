"""Ingest benchmark: a ~1 GB CSV uploaded through the SDK to a running server.

Measures, in one run on the same file:
  - ``pyarrow.csv.read_csv`` alone (parse only, the reference), in its own process;
  - OpenMaaS: SDK upload -> streamed receive -> typed Parquet version + profile,
    wall time seen by the client, with the peak RSS of the client and the server.
Target: OpenMaaS within 1.5x of the parse-only time, every process under 1 GB.

    python benchmarks/ingest.py [--runs 3] [--rows 4200000] [--keep]

The CSV is made by ``../shared/bench/ingest/gen_csv.py`` when present (the file the
reference numbers were measured on), else by an equivalent generator here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHARED_GEN = ROOT.parent / "shared" / "bench" / "ingest" / "gen_csv.py"
RESULTS = ROOT / "benchmarks" / "results"

PARSE_ONLY = """
import sys, time, pyarrow.csv as c
t = time.perf_counter(); table = c.read_csv(sys.argv[1]); dt = time.perf_counter() - t
print(dt, table.num_rows)
"""

UPLOAD = """
import sys, time, json, openmaas
client = openmaas.Client(sys.argv[1], sys.argv[2], timeout=3600)
t = time.perf_counter()
ds = client.datasets.upload(int(sys.argv[3]), sys.argv[4], name=sys.argv[5])
dt = time.perf_counter() - t
v = client.datasets.version(ds)
print(json.dumps({"seconds": dt, "rows": v.n_rows, "parquet_bytes": v.size_bytes}))
"""


def run_child(code: str, *args: str) -> tuple[str, float]:
    """Run Python code in a fresh process: its stdout and its peak RSS in MB.

    The child reports its own ``ru_maxrss`` last, so no outside tool is needed.
    """
    tail = "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run(
        [sys.executable, "-c", code + tail, *args], check=True, capture_output=True, text=True
    )
    lines = out.stdout.strip().splitlines()
    return "\n".join(lines[:-1]), int(lines[-1]) / 1024


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generator_python() -> str:
    """A Python with polars for the shared generator: ours, or a throwaway venv."""
    probe = subprocess.run([sys.executable, "-c", "import polars"], capture_output=True)
    if probe.returncode == 0:
        return sys.executable
    venv = ROOT / "benchmarks" / ".work" / "genvenv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "polars", "numpy", "pyarrow"], check=True)
    return str(venv / "bin" / "python")


def make_csv(path: Path, rows: int) -> None:
    if SHARED_GEN.exists():
        subprocess.run([generator_python(), str(SHARED_GEN), str(path), str(rows)], check=True)
        return
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(20240611)
    with pacsv.CSVWriter(
        str(path),
        pa.schema([("id", pa.int64()), ("a", pa.float64()), ("b", pa.int64()), ("c", pa.string())]),
    ) as w:
        for start in range(0, rows, 250_000):
            n = min(250_000, rows - start)
            w.write_table(
                pa.table(
                    {
                        "id": np.arange(start, start + n),
                        "a": rng.normal(size=n).round(4),
                        "b": rng.integers(0, 1000, n),
                        "c": rng.choice(["x", "y", "z"], n),
                    }
                )
            )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str, str, int]:
    env = {**os.environ, "OPENMAAS_HOME": str(home), "OPENMAAS_MAX_UPLOAD_BYTES": str(8 << 30)}
    boot = subprocess.run(
        [
            sys.executable,
            "-c",
            "from openmaas.config import Settings; from openmaas.domain.context import Platform;"
            "from openmaas.domain.identity import bootstrap_admin;"
            "p = Platform(Settings()); p.prepare(); print(bootstrap_admin(p).token)",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = boot.stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "openmaas.api.app:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    import openmaas

    client = openmaas.Client(url, token)
    client.orgs.create("bench")
    project = client.projects.create("bench", "ingest")
    return proc, url, token, int(project.id)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rows", type=int, default=4_200_000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the generated CSV")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="openmaas-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "bench.csv"
    if not csv.exists():
        print(f"generating {args.rows:,} rows into {csv} ...", file=sys.stderr)
        make_csv(csv, args.rows)
    size_mb = csv.stat().st_size / 1e6

    parse: list[tuple[float, float]] = []
    ours: list[dict[str, float]] = []
    for run in range(args.runs):
        out, rss = run_child(PARSE_ONLY, str(csv))
        parse.append((float(out.split()[0]), rss))

        home = work / f"home-{run}"
        proc, url, token, project = start_server(home)
        try:
            t0 = time.perf_counter()
            out, client_rss = run_child(UPLOAD, url, token, str(project), str(csv), f"run{run}")
            wall = time.perf_counter() - t0
            info = json.loads(out.splitlines()[-1])
            server_rss = peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            shutil.rmtree(home, ignore_errors=True)
        ours.append(
            {
                "seconds": info["seconds"],
                "process_wall": wall,
                "server_rss": server_rss,
                "client_rss": client_rss,
                "rows": info["rows"],
                "parquet_mb": info["parquet_bytes"] / 1e6,
            }
        )
        print(
            f"run {run}: parse {parse[-1][0]:.2f}s, openmaas {info['seconds']:.2f}s",
            file=sys.stderr,
        )

    p_time = statistics.median(t for t, _ in parse)
    p_rss = statistics.median(r for _, r in parse)
    o_time = statistics.median(o["seconds"] for o in ours)
    o_srv = max(o["server_rss"] for o in ours)
    o_cli = max(o["client_rss"] for o in ours)
    ratio = o_time / p_time
    lines = [
        f"# Ingest benchmark ({date.today().isoformat()})",
        "",
        f"File: {size_mb:,.1f} MB CSV, {ours[0]['rows']:,} rows; {args.runs} runs, medians; "
        f"machine: {os.cpu_count()} cores.",
        "",
        "| path | wall s | MB/s | peak RSS MB | vs parse-only |",
        "|---|---|---|---|---|",
        f"| pyarrow `csv.read_csv` (parse only, this run) | {p_time:.2f} | {size_mb / p_time:.0f} "
        f"| {p_rss:.0f} | 1.00x |",
        f"| **OpenMaaS**: SDK upload + parse + typed Parquet version + profile | {o_time:.2f} "
        f"| {size_mb / o_time:.0f} | server {o_srv:.0f}, client {o_cli:.0f} | {ratio:.2f}x |",
        "",
        "Measured elsewhere on this kind of machine (../shared/bench/ingest/RESULTS.md), "
        "CSV -> Parquet: DuckDB 113 MB/s in 0.56 GB, polars streaming 70 MB/s in 0.42 GB, "
        "pandas 65-73 MB/s in 2-3.3 GB, Hugging Face datasets 38 MB/s in 1.4 GB; "
        "pyarrow read_csv parse only 113 MB/s in 2.9 GB.",
        "",
        f"Target: <= 1.5x parse-only time -> {_met(ratio <= 1.5)} ({ratio:.2f}x); "
        f"every process < 1 GB -> {_met(max(o_srv, o_cli) < 1024)}.",
        "",
        "Per run: " + json.dumps(ours),
    ]
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.md").write_text(table + "\n")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def _met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


if __name__ == "__main__":
    main()

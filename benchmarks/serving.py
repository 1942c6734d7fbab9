"""Serving benchmark: an OpenMaaS replica against the harness's ceilings, in one run.

Drives the load harness in ``../shared/bench/serving/`` (wrk, one thread, 32
connections, 5 s warm-up, 15 s measured, wrk on CPU 0 and the server pinned to
CPU 1) against ``openmaas serve-endpoint`` serving the harness's reference
LightGBM model (``model/model.txt``), called with a consumer organisation's
predict-only token, with authentication, a rate limit (set high enough not to
bite), usage accounting and monitoring (1% request log sample) all on. Each
request body is different: wrk cycles through 1,000 distinct 1-row and 1,000
distinct 1000-row payloads (``serving/cycle.lua``), so nothing can be cached.

In the same run it measures the same replica computing with ``Booster.predict``
(``OPENMAAS_SERVING_ACCELERATE=false``; by default a LightGBM version runs on
ONNX Runtime), the harness's bare ASGI server (``servers/asgi_const.py``
through the harness's ``run.sh``), in-process ``Booster.predict`` and the
replica's own model call (ONNX Runtime) on the same core, then two replicas (unpinned, each loaded
by its own wrk: indicative only) and each replica's memory.

    python benchmarks/serving.py [--runs 3] [--duration 15s] [--out benchmarks/results/serving.md]

Needs wrk (``apt-get install wrk``) and ``../shared/bench/serving``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT.parent / "shared" / "bench" / "serving"
LUA = Path(__file__).resolve().parent / "serving" / "cycle.lua"
VENV_BIN = Path(sys.executable).parent
N_PAYLOADS = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MB)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# Set-up ---------------------------------------------------------------------------------


def setup_platform(home: Path) -> tuple[str, list[str]]:
    """A platform with the reference model deployed for a consumer; returns its token."""
    from starlette.testclient import TestClient

    from openmaas.api.app import create_app
    from openmaas.config import Settings
    from openmaas.domain import orgs
    from openmaas.domain.context import Platform
    from openmaas.domain.identity import bootstrap_admin, create_token, principal_for_user

    platform = Platform(Settings(home=home))
    platform.prepare()
    admin = bootstrap_admin(platform).token
    api = TestClient(create_app(platform, prepare=False))

    def call(method: str, path: str, token: str = admin, **kw):  # type: ignore[no-untyped-def]
        r = api.request(
            method, f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, **kw
        )
        if not r.is_success:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return r.json() if r.content else None

    call("POST", "/orgs", json={"name": "provider"})
    project = call("POST", "/projects", json={"org": "provider", "name": "serving"})
    model = call("POST", f"/projects/{project['id']}/models", json={"name": "cancer"})
    version = call(
        "POST", f"/models/{model['id']}/versions/upload", params={"filename": "model.txt"},
        content=(HARNESS / "model" / "model.txt").read_bytes(),
    )  # fmt: skip
    call("POST", f"/projects/{project['id']}/endpoints", json={
        "name": "cancer", "audience": "consumers",
        "targets": [{"version_id": version["id"], "weight": 100}],
        "limits": {"rate_per_minute": 10**9},
        "monitoring": {"sample_rate": 0.01},
    })  # fmt: skip
    user = call("POST", "/users", json={"username": "consumer", "password": "consumer-password"})
    principal = principal_for_user(platform, user["id"])
    consumer_ctx = platform.as_(principal)
    orgs.create(consumer_ctx, "clinic")
    call("PUT", "/endpoints/cancer/consumers/clinic", json={"rate_per_minute": 10**9})
    token = create_token(consumer_ctx, "bench", scopes=["predict"]).token
    platform.store.dispose()
    return token, [f"f{i}" for i in range(30)]


def write_payloads(work: Path) -> dict[int, Path]:
    """1,000 distinct bodies per batch size: breast_cancer rows with small noise."""
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer().data
    rng = np.random.default_rng(0)
    pool = X[rng.integers(0, len(X), 12_000)] * rng.normal(1.0, 0.01, (12_000, X.shape[1]))
    pool = np.round(pool, 5)
    out = {}
    for n in (1, 1000):
        path = work / f"bodies_{n}.txt"
        with path.open("w") as f:
            for i in range(N_PAYLOADS):
                rows = pool[(i * 11) % (len(pool) - n) :][:n]
                f.write(json.dumps({"data": rows.tolist()}, separators=(",", ":")) + "\n")
        out[n] = path
    return out


# Measuring ------------------------------------------------------------------------------


def parse_result(text: str) -> dict[str, float]:
    line = next(ln for ln in text.splitlines() if ln.startswith("RESULT"))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


def wrk(
    url: str, bodies: Path, token: str, duration: str, cpu: str | None = "0"
) -> dict[str, float]:
    pin = ["taskset", "-c", cpu] if cpu else []
    base = [*pin, "wrk", "-t1", "-c32", "--timeout", "10s", "-s", str(LUA)]
    subprocess.run([*base, "-d5s", url, "--", str(bodies), token], check=True, capture_output=True)
    out = subprocess.run([*base, f"-d{duration}", "--latency", url, "--", str(bodies), token],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return parse_result(out)


def start_replica(
    home: Path, port: int, cpu: str | None, *, accelerate: bool = True
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENMAAS_HOME": str(home), "OMP_NUM_THREADS": "1",
           "OPENMAAS_SERVING_ACCELERATE": str(accelerate).lower()}  # fmt: skip
    pin = ["taskset", "-c", cpu] if cpu else []
    proc = subprocess.Popen(
        [*pin, str(VENV_BIN / "openmaas"), "serve-endpoint", "cancer", "--port", str(port)],
        env=env,
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def check_correct(port: int, token: str) -> float:
    """Max abs difference against Booster.predict on the harness's 1000-row payload."""
    import lightgbm as lgb

    body = json.loads((HARNESS / "payloads" / "data_1000.json").read_text())
    booster = lgb.Booster(model_file=str(HARNESS / "model" / "model.txt"))
    r = httpx.post(f"http://127.0.0.1:{port}/api/v1/endpoints/cancer/predict", json=body,
                   headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
    r.raise_for_status()
    return float(np.abs(np.asarray(r.json()["predictions"]) - booster.predict(body["data"])).max())


def bare_asgi(outdir: Path, duration: str) -> dict[str, float]:
    """The harness's own run.sh against servers/asgi_const.py pinned to CPU 1."""
    port = 18050
    proc = subprocess.Popen(
        ["taskset", "-c", "1", str(VENV_BIN / "uvicorn"), "asgi_const:app", "--host",
         "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"],
        cwd=HARNESS / "servers",
    )  # fmt: skip
    try:
        wait_ready_post(port)
        env = {**os.environ, "OUTDIR": str(outdir), "CHECK_ARGS": "--status-only",
               "DURATION": duration, "BATCHES": "1", "SERVER_CPUS": "1"}  # fmt: skip
        url = f"http://127.0.0.1:{port}/predict"
        cmd = ["bash", str(HARNESS / "run.sh"), url, "data", "asgi-uvicorn"]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return parse_result((outdir / "asgi-uvicorn_rows1.txt").read_text())
    finally:
        stop(proc)


def wait_ready_post(port: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/predict", content=b"{}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("bare ASGI server did not start")


def in_process() -> dict[str, float]:
    """Booster.predict on CPU 1, one thread (the harness's inprocess.py, our interpreter)."""
    out = subprocess.run(["taskset", "-c", "1", sys.executable, str(HARNESS / "inprocess.py")],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    res = {}
    for line in out.splitlines():
        if "num_threads=1" in line and "numpy" in line:
            rows_s = float(line.split("us/row")[1].split("rows/s")[0].replace(",", ""))
            res["rows1" if "1 row" in line else "rows1000"] = rows_s
    return res


def in_process_onnx() -> dict[str, float]:
    """What the replica's model call costs alone: the booster on ONNX Runtime (as the
    replica runs it, :func:`booster_session`) on CPU 1, one thread, in rows/s."""
    code = (
        "import json, time, lightgbm as lgb, numpy as np\n"
        "from openmaas.ml.compress.accelerate import booster_session\n"
        f"h = {str(HARNESS)!r}\n"
        "X = np.asarray(json.load(open(h + '/payloads/data_1000.json'))['data'], float)\n"
        "f = booster_session(lgb.Booster(model_file=h + '/model/model.txt'))\n"
        "def bench(x, n):\n"
        "    f(x); per = []\n"
        "    for _ in range(7):\n"
        "        t = time.perf_counter()\n"
        "        for _ in range(n): f(x)\n"
        "        per.append((time.perf_counter() - t) / n)\n"
        "    return sorted(per)[3]\n"
        "print(json.dumps({'rows1': 1 / bench(X[:1].copy(), 2000),"
        " 'rows1000': 1000 / bench(X, 50)}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(["taskset", "-c", "1", sys.executable, "-c", code], check=True,
                         capture_output=True, text=True, env=env)  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", default="15s")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serving.md")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    if not HARNESS.is_dir():
        sys.exit(f"the harness is not at {HARNESS}")
    work = Path(tempfile.mkdtemp(prefix="omserving-"))
    outdir = work / "harness"
    outdir.mkdir()
    home = work / "home"
    token, _ = setup_platform(home)
    bodies = write_payloads(work)
    print(f"work folder {work}")

    ours: dict[int, list[dict[str, float]]] = {1: [], 1000: []}
    native: dict[int, list[dict[str, float]]] = {1: [], 1000: []}
    ceiling: list[dict[str, float]] = []
    floor: list[dict[str, float]] = []
    onnx_floor: list[dict[str, float]] = []
    memory: list[float] = []
    diff = float("nan")
    for run in range(args.runs):
        port = free_port()
        proc = start_replica(home, port, "1")
        try:
            diff = check_correct(port, token)
            url = f"http://127.0.0.1:{port}/api/v1/endpoints/cancer/predict"
            for n in (1, 1000):
                ours[n].append(wrk(url, bodies[n], token, args.duration))
                print(f"run {run + 1} openmaas rows={n}: {ours[n][-1]}")
            memory.append(rss_mb(proc.pid))
        finally:
            stop(proc)
        # the same replica computing with Booster.predict (OPENMAAS_SERVING_ACCELERATE=false)
        port = free_port()
        proc = start_replica(home, port, "1", accelerate=False)
        try:
            url = f"http://127.0.0.1:{port}/api/v1/endpoints/cancer/predict"
            for n in (1, 1000):
                native[n].append(wrk(url, bodies[n], token, args.duration))
                print(f"run {run + 1} openmaas native rows={n}: {native[n][-1]}")
        finally:
            stop(proc)
        ceiling.append(bare_asgi(outdir, args.duration))
        print(f"run {run + 1} bare ASGI: {ceiling[-1]}")
        floor.append(in_process())
        print(f"run {run + 1} in-process: {floor[-1]}")
        onnx_floor.append(in_process_onnx())
        print(f"run {run + 1} in-process ONNX Runtime: {onnx_floor[-1]}")

    # Two replicas, unpinned, each driven by its own wrk (indicative).
    ports = [free_port(), free_port()]
    procs = [start_replica(home, p, None) for p in ports]
    two: dict[int, float] = {}
    try:
        for n in (1, 1000):
            runs = [subprocess.Popen(
                ["wrk", "-t1", "-c16", "--timeout", "10s", f"-d{args.duration}", "--latency", "-s",
                 str(LUA), f"http://127.0.0.1:{p}/api/v1/endpoints/cancer/predict", "--",
                 str(bodies[n]), token], stdout=subprocess.PIPE, text=True)
                for p in ports]  # fmt: skip
            two[n] = sum(parse_result(r.communicate()[0])["rps"] for r in runs) * n
        two_mem = [rss_mb(p.pid) for p in procs]
    finally:
        for p in procs:
            stop(p)

    write_table(args, ours, native, ceiling, floor, onnx_floor, memory, two, two_mem, diff)


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def write_table(args, ours, native, ceiling, floor, onnx_floor, memory, two, two_mem, diff) -> None:  # type: ignore[no-untyped-def]
    def summary(runs: dict[int, list[dict[str, float]]]) -> dict[str, float]:
        return {
            "rps1": med([r["rps"] for r in runs[1]]),
            "p50_1": med([r["p50_ms"] for r in runs[1]]),
            "p99_1": med([r["p99_ms"] for r in runs[1]]),
            "rows1000": med([r["rps"] for r in runs[1000]]) * 1000,
            "p99_1000": med([r["p99_ms"] for r in runs[1000]]),
        }

    o, nat = summary(ours), summary(native)
    bare = med([r["rps"] for r in ceiling])
    bare_p99 = med([r["p99_ms"] for r in ceiling])
    inproc = med([f["rows1000"] for f in floor])
    inproc1 = med([f["rows1"] for f in floor])
    ort = med([f["rows1000"] for f in onnx_floor])
    ort1 = med([f["rows1"] for f in onnx_floor])
    non2xx = sum(r["non2xx"] for runs in (ours, native) for rs in runs.values() for r in rs)
    t1, t2 = o["rps1"] / bare, o["rows1000"] / inproc
    ok1 = t1 >= 0.35 and o["p99_1"] < 15
    ok2 = t2 >= 0.85
    today = dt.date.today().isoformat()

    def row(name: str, x: dict[str, float]) -> str:
        return (
            f"| {name} | **{x['rps1']:,.0f}** | {x['p50_1']:.1f} / {x['p99_1']:.1f} | "
            f"**{x['rows1000']:,.0f}** | {x['p99_1000']:.0f} |"
        )

    lines = [
        f"# Serving benchmark ({today})",
        "",
        f"`python benchmarks/serving.py --runs {args.runs} --duration {args.duration}`. Medians of "
        f"{args.runs} runs; wrk -t1 -c32 on CPU 0, server pinned to CPU 1 (2-core machine). "
        "OpenMaaS: `openmaas serve-endpoint` with the harness's `model/model.txt` (300 trees), "
        "called with a consumer organisation's predict-only token; authentication, a rate "
        "limit (10^9/min: checked on every request, never reached), usage accounting and "
        "monitoring (1% request-log sample, per-minute stats) on; every request body different "
        f"(1,000 distinct payloads per size). Non-2xx answers: {int(non2xx)}. Max abs diff "
        f"against `Booster.predict` on the harness's 1000-row payload: {diff:.2g}.",
        "",
        "The replica computes a LightGBM version on ONNX Runtime (`TreeEnsemble` in double "
        "precision, checked against `Booster.predict` on probe rows when the version loads; "
        "`OPENMAAS_SERVING_ACCELERATE=false` turns it off): the second row is the same "
        "replica with `Booster.predict`, measured in the same run.",
        "",
        "| server | req/s, 1 row | p50 / p99 ms, 1 row | rows/s, 1000-row requests "
        "| p99 ms, 1000 rows |",
        "|---|---|---|---|---|",
        row("OpenMaaS replica (this run)", o),
        row("OpenMaaS replica, `Booster.predict` (this run)", nat),
        f"| bare ASGI + orjson, harness `asgi_const.py` (this run) | {bare:,.0f} | - / "
        f"{bare_p99:.1f} | - | - |",
        f"| in-process `Booster.predict`, 1 thread (this run) | {inproc1:,.0f} calls/s | - | "
        f"{inproc:,.0f} | - |",
        f"| in-process ONNX Runtime, the replica's model call, 1 thread (this run) | "
        f"{ort1:,.0f} calls/s | - | {ort:,.0f} | - |",
        "| FastAPI, the obvious version (harness RESULTS.md) | 1,753-1,875 | 16.8 / 96.4 | "
        "24,940-29,210 | - |",
        "| BentoML 1.4.39 (harness RESULTS.md) | 238-340 | 116 / 375 | 27,060-29,730 | - |",
        "| MLflow 3.17.2 scoring server (harness RESULTS.md) | 79-96 | 386 / 741 | "
        "16,320-19,490 | - |",
        "",
        f"Targets: one-row throughput >= 35% of the bare ASGI server's with p99 < 15 ms: "
        f"{t1:.0%}, p99 {o['p99_1']:.1f} ms -> {'MET' if ok1 else 'NOT MET'}; 1000-row "
        f"throughput >= 85% of in-process prediction (`Booster.predict`): {t2:.0%} -> "
        f"{'MET' if ok2 else 'NOT MET'}. Against the replica's own model call (in-process ONNX "
        f"Runtime) the 1000-row throughput is {o['rows1000'] / ort:.0%}. With `Booster.predict` "
        f"the replica gives {nat['rps1'] / bare:.0%} of the bare server's one-row throughput "
        f"and {nat['rows1000'] / inproc:.0%} of in-process `Booster.predict`'s rows/s.",
        "",
        f"Two replicas, unpinned, each loaded by its own wrk (-c16; indicative, wrk shares the "
        f"cores): {two[1]:,.0f} req/s with 1-row requests, {two[1000]:,.0f} rows/s with "
        f"1000-row requests. Memory per replica (RSS after load): "
        f"{', '.join(f'{m:.0f} MB' for m in two_mem)}; pinned replica {med(memory):.0f} MB.",
        "",
        "Per run (req/s): OpenMaaS 1 row "
        + ", ".join(f"{r['rps']:,.0f}" for r in ours[1])
        + "; 1000 rows "
        + ", ".join(f"{r['rps']:,.1f}" for r in ours[1000])
        + "; with Booster.predict 1 row "
        + ", ".join(f"{r['rps']:,.0f}" for r in native[1])
        + "; 1000 rows "
        + ", ".join(f"{r['rps']:,.1f}" for r in native[1000])
        + "; bare ASGI "
        + ", ".join(f"{r['rps']:,.0f}" for r in ceiling)
        + "; in-process rows/s "
        + ", ".join(f"{f['rows1000']:,.0f}" for f in floor)
        + ".",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

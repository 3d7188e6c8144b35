"""Serving benchmark: runway's endpoint vs a bare `mlflow models serve` of the same version.

Three endpoints side by side in one run, on loopback, from the same environment:
a bare ``mlflow models serve -w 1`` (what a user would run without runway);
MLflow's scoring app run by uvicorn directly on TCP, exactly as runway starts
each backend but on a port (what the gateway adds is then the only difference);
and ``runway serve`` with its defaults (two such backends on Unix sockets).

1. single-row latency (p50, p99) from one keep-alive client, the endpoints
   interleaved block by block so drift on the machine hits all alike.
   Target: runway costs at most 1.5 ms at p50 over the bare `mlflow models serve`;
2. requests/s with 8 concurrent keep-alive clients (and their p99);
3. memory (PSS, MB) of each endpoint's processes after the runs;
4. a load check on runway's endpoint: 8 clients for 60 s, zero errors, p99;
5. threads: a HistGradientBoosting model on two bare backends, one with BLAS and
   OpenMP threads pinned to 1 as `runway serve` starts its backends
   (``RUNWAY_THREADS``), one with the libraries' default (a thread per core),
   single-row latency interleaved while busy processes keep every core loaded
   (a shared host). Target: pinned p50 below unpinned p50.

runway runs with its defaults: contract checks, Host check, limits, metrics and
the prediction log (Parquet, in a temporary directory) all on.

    python benchmarks/serving.py [--requests 3000] [--load-seconds 60]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.helpers.ship: the same set-up as the serving tests

from tests.helpers import ship  # noqa: E402

from runway.team.procs import tree  # noqa: E402

MODEL = "bench-serving"
THREADS_MODEL = "bench-threads"


def _setup(root: Path) -> dict[str, str]:
    """Train, register and promote one model in a fresh store; the env to serve it."""
    spec = {
        "experiment": "bench-serving",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {
            "name": "RandomForestClassifier",
            "params": {"n_estimators": 100, "random_state": 0},
        },
        "split": {"holdout": 0.2, "cv_folds": 2, "seed": 0},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    settings, _, _ = ship(root, spec, reviewer="bench")
    uri = settings.tracking_uri
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "RUNWAY_PREDICTION_LOG": str(root / "predictions"),
        "PYTHONPATH": str(REPO / "src"),
        # `mlflow models serve` execs `uvicorn` from PATH: this environment's
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def set_up_apart(script: str, *args: str) -> Any:
    """``python SCRIPT --setup ARGS... OUT`` in a fresh interpreter; the JSON it wrote to OUT.

    Training and registering happen there, so the process that times the endpoints
    never holds the training's objects (a garbage collection over them would be a
    pause inside a timing) nor its threads.
    """
    with tempfile.TemporaryDirectory(prefix="runway-bench-setup-") as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run([sys.executable, script, "--setup", *args, str(out)], check=True)
        return json.loads(out.read_text())


def _setup_threads_model(root: Path) -> None:
    """A HistGradientBoosting classifier (OpenMP inside predict) in the same store."""
    spec = {
        "experiment": "bench-threads",
        "task": "classification",
        "model_name": THREADS_MODEL,
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": "HistGradientBoostingClassifier", "params": {"max_iter": 100}},
        "split": {"holdout": 0.2, "cv_folds": 2, "seed": 0},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    ship(root, spec, reviewer="bench")


def _busy(cores: int) -> list[subprocess.Popen]:
    """One spinning process per core: the load a shared host puts on a backend."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(cores)
    ]


def _threads(root: Path, env: dict[str, str], body: bytes, requests: int) -> list[tuple]:
    """Single-row latency of pinned and unpinned backends of one model, under load."""
    from runway.core.threads import THREAD_VARIABLES, cores, thread_env

    set_up_apart(__file__, "threads", str(root))
    unpinned_env = {k: v for k, v in env.items() if k not in THREAD_VARIABLES}
    variants = {
        "unpinned (a thread per core, today's default)": unpinned_env,
        "pinned to 1 (RUNWAY_THREADS unset)": {**unpinned_env, **thread_env(1)},
    }
    procs, ports = [], {}
    try:
        for name, variant_env in variants.items():
            port = _free_port()
            log = root / f"threads-{len(procs)}.log"
            command = [sys.executable, "-m", "mlflow", "models", "serve", "-m",
                       f"models:/{THREADS_MODEL}/1", "--env-manager", "local",
                       "-h", "127.0.0.1", "-p", str(port), "-w", "1"]  # fmt: skip
            procs.append(_start(command, variant_env, log))
            _wait(port, "/ping", procs[-1], log)
            ports[name] = port
        load = _busy(cores())
        try:
            times = _latency(ports, body, requests, block=50)
        finally:
            for proc in load:
                _stop(proc)
    finally:
        for proc in procs:
            _stop(proc)
    return [(name, times[name]) for name in ports]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait(port: int, path: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"port {port} did not answer {path} in {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


class Client:
    """One keep-alive connection posting the same single-row body."""

    def __init__(self, port: int, body: bytes) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.body = body
        self.headers = {"Content-Type": "application/json"}

    def post(self) -> tuple[int, float]:
        for attempt in (0, 1):
            started = time.perf_counter()
            try:
                self.conn.request("POST", "/invocations", self.body, self.headers)
                response = self.conn.getresponse()
                response.read()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # the server closed an idle keep-alive connection (uvicorn's 5 s
                # default) while the other endpoint's block ran: reconnect, re-time
                self.conn.close()
                if attempt:
                    raise
                continue
            return response.status, time.perf_counter() - started
        raise AssertionError("unreachable")


def _latency(
    ports: dict[str, int], body: bytes, requests: int, block: int = 250
) -> dict[str, list[float]]:
    clients = {name: Client(port, body) for name, port in ports.items()}
    for client in clients.values():  # warm both: first requests pay imports and caches
        for _ in range(100):
            client.post()
    times: dict[str, list[float]] = {name: [] for name in ports}
    while min(len(t) for t in times.values()) < requests:
        for name, client in clients.items():
            for _ in range(block):
                status, seconds = client.post()
                if status != 200:
                    sys.exit(f"{name}: HTTP {status}")
                times[name].append(seconds)
    return times


def _concurrent(
    port: int, body: bytes, clients: int, seconds: float
) -> tuple[int, int, list[float]]:
    """(requests, errors, latencies) of ``clients`` threads posting for ``seconds``."""
    stop = time.monotonic() + seconds
    results: list[tuple[int, float]] = []
    errors = [0]
    lock = threading.Lock()

    def run() -> None:
        client = Client(port, body)
        mine = []
        while time.monotonic() < stop:
            try:
                status, took = client.post()
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                client = Client(port, body)
                continue
            mine.append((status, took))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = errors[0] + sum(1 for status, _ in results if status != 200)
    return len(results), bad, [took for _, took in results]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _pss_mb(pids: list[int]) -> float:
    """Proportional set size of ``pids`` (shared pages split between sharers), in MB."""
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next(
            int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")
        )
    return total / 1024


LOGS = {
    "bare mlflow models serve": "bare.log",
    "scoring app on uvicorn, TCP (a runway backend, bare)": "app.log",
    "runway serve (gateway + 2 backends)": "runway.log",
}


def _start_all(root: Path, env: dict[str, str]) -> dict[str, tuple[int, subprocess.Popen, str]]:
    """name -> (port, process, ready path) of the three endpoints."""
    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    model_dir = mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=str(root / "m"))
    ports = [_free_port() for _ in range(3)]
    bare = _start(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}/1",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports[0]), "-w", "1"],
        env, root / "bare.log",
    )  # fmt: skip
    app = _start(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(ports[1]),
         "--workers", "1", "--no-access-log", "mlflow.pyfunc.scoring_server.app:app"],
        {**env, "__pyfunc_model_path__": model_dir}, root / "app.log",
    )  # fmt: skip
    ours = _start(
        [sys.executable, "-m", "runway", "serve", MODEL, "--port", str(ports[2]),
         "--log-dir", str(root / "logs")],
        env, root / "runway.log",
    )  # fmt: skip
    return {
        "bare mlflow models serve": (ports[0], bare, "/ping"),
        "scoring app on uvicorn, TCP (a runway backend, bare)": (ports[1], app, "/ping"),
        "runway serve (gateway + 2 backends)": (ports[2], ours, "/ready"),
    }


def _memory(endpoints: dict[str, tuple[int, subprocess.Popen, str]]) -> list[str]:
    """Lines of the memory table: PSS per endpoint, and per process for runway."""
    lines = ["| endpoint | processes | PSS MB |", "| --- | --- | --- |"]
    for name, (_, proc, _) in endpoints.items():
        pids = tree(proc.pid)
        lines.append(f"| {name} | {len(pids)} | {_pss_mb(pids):.0f} |")
        if name.startswith("runway"):
            backends = [p for p in pids if p != proc.pid]
            each = ", ".join(f"{_pss_mb([p]):.0f}" for p in backends)
            lines.append(f"| - of which the gateway | 1 | {_pss_mb([proc.pid]):.0f} |")
            lines.append(f"| - of which each backend | {len(backends)} | {each} |")
    return lines


def main() -> None:
    if sys.argv[1:2] == ["--setup"]:  # the child of set_up_apart
        step, where, out = sys.argv[2:5]
        env: dict[str, str] = {}
        if step == "serving":
            env = _setup(Path(where))
        else:
            _setup_threads_model(Path(where))
        Path(out).write_text(json.dumps(env))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=3000, help="single-row requests per endpoint"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--throughput-seconds", type=float, default=15)
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument(
        "--threads-requests", type=int, default=600, help="single-row requests per threads variant"
    )
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    with tempfile.TemporaryDirectory(prefix="runway-bench-serving-") as tmp:
        root = Path(tmp)
        print("serving benchmark: training and promoting a 100-tree random forest ...", flush=True)
        env = set_up_apart(__file__, "serving", str(root))
        endpoints = _start_all(root, env)
        try:
            for name, (port, proc, ready) in endpoints.items():
                _wait(port, ready, proc, root / LOGS[name])
            example = json.loads(
                next(
                    root.glob("mlruns/*/models/*/artifacts/serving_input_example.json")
                ).read_text()
            )
            split = example["dataframe_split"]
            body = json.dumps(
                {"dataframe_split": {"columns": split["columns"], "data": split["data"][:1]}}
            ).encode()
            ports = {name: port for name, (port, _, _) in endpoints.items()}
            print(f"latency: {args.requests} single-row requests each, interleaved ...", flush=True)
            times = _latency(ports, body, args.requests)
            rows = []
            for name, port in ports.items():
                print(
                    f"throughput: {args.concurrency} clients x {args.throughput_seconds:g} s on {name} ...",
                    flush=True,
                )
                n, bad, lat = _concurrent(port, body, args.concurrency, args.throughput_seconds)
                rows.append((name, times[name], n / args.throughput_seconds, _pct(lat, 0.99), bad))
            memory = _memory(endpoints)
            print(
                f"load check: {args.concurrency} clients x {args.load_seconds:g} s on runway ...",
                flush=True,
            )
            runway_port = ports["runway serve (gateway + 2 backends)"]
            load = _concurrent(runway_port, body, args.concurrency, args.load_seconds)
        finally:
            for _, proc, _ in endpoints.values():
                _stop(proc)
        print("threads: HistGradientBoosting, pinned vs unpinned backends, cores busy ...")
        threads = _threads(root, env, body, args.threads_requests)
    _report(rows, memory, load, threads, args)


def _report(
    rows: list, memory: list[str], load: tuple, threads: list[tuple], args: argparse.Namespace
) -> None:
    print()
    print("| endpoint | p50 ms | p99 ms | req/s @ c=8 | p99 ms @ c=8 | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, lat, rps, p99c, bad in rows:
        p50, p99 = statistics.median(lat) * 1000, _pct(lat, 0.99)
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {rps:.0f} | {p99c:.1f} | {bad} |")
    print()
    print("\n".join(memory))
    bare_p50, app_p50, ours_p50 = (statistics.median(r[1]) * 1000 for r in rows)
    cost = ours_p50 - bare_p50
    verdict = "ok" if cost <= 1.5 else "FAIL"
    print()
    print(
        f"runway's cost at p50 over bare mlflow models serve: {cost:+.2f} ms (target <= 1.5 ms): "
        f"{verdict}; p50 ratio {ours_p50 / bare_p50:.3f}; throughput ratio {rows[2][2] / rows[0][2]:.2f}"
    )
    print(
        f"the gateway alone (runway vs its backend served bare on TCP): {ours_p50 - app_p50:+.2f} ms "
        f"at p50; throughput ratio {rows[2][2] / rows[1][2]:.2f}"
    )
    load_n, load_bad, load_lat = load
    load_verdict = "ok" if load_bad == 0 else "FAIL"
    print(
        f"load check: {args.concurrency} clients x {args.load_seconds:g} s on runway: "
        f"{load_n} requests, {load_bad} errors, p50 {_pct(load_lat, 0.5):.1f} ms, "
        f"p99 {_pct(load_lat, 0.99):.1f} ms: {load_verdict}"
    )
    print()
    print("| HistGradientBoosting backend, every core busy | p50 ms | p90 ms | p99 ms |")
    print("| --- | --- | --- | --- |")
    for name, lat in threads:
        print(
            f"| {name} | {statistics.median(lat) * 1000:.2f} | {_pct(lat, 0.9):.2f} | {_pct(lat, 0.99):.2f} |"
        )
    unpinned, pinned = (statistics.median(lat) * 1000 for _, lat in threads)
    verdict = "ok" if pinned < unpinned else "FAIL"
    print(f"pinned / unpinned p50: {pinned / unpinned:.2f} (target < 1): {verdict}")


if __name__ == "__main__":
    main()

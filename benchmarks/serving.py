"""Serving benchmark: runway's endpoint vs a bare `mlflow models serve` of the same version.

Both run side by side in one run, on loopback, from the same environment:

1. single-row latency (p50, p99) from one keep-alive client, the two endpoints
   interleaved block by block so drift on the machine hits both alike.
   Target: runway's features cost at most 1.5 ms at p50 over the bare server;
2. requests/s with 8 concurrent keep-alive clients (and their p99);
3. a load check on runway's endpoint: 8 clients for 60 s, zero errors, p99;
4. threads: a HistGradientBoosting model on two bare backends, one with BLAS and
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.helpers.ship: the same set-up as the serving tests

from tests.helpers import ship  # noqa: E402

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

    _setup_threads_model(root)
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
        try:
            return self._post()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # the server closed an idle keep-alive connection (uvicorn: after 5 s)
            self.conn.close()
            return self._post()

    def _post(self) -> tuple[int, float]:
        started = time.perf_counter()
        self.conn.request("POST", "/invocations", self.body, self.headers)
        response = self.conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started


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


def main() -> None:
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
        env = _setup(root)
        bare_port, runway_port = _free_port(), _free_port()
        bare = _start(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}/1",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(bare_port), "-w", "1"],
            env, root / "bare.log",
        )  # fmt: skip
        ours = _start(
            [sys.executable, "-m", "runway", "serve", MODEL, "--port", str(runway_port),
             "--log-dir", str(root / "logs")],
            env, root / "runway.log",
        )  # fmt: skip
        try:
            _wait(bare_port, "/ping", bare, root / "bare.log")
            _wait(runway_port, "/ready", ours, root / "runway.log")
            example = json.loads(
                next(
                    root.glob("mlruns/*/models/*/artifacts/serving_input_example.json")
                ).read_text()
            )
            split = example["dataframe_split"]
            body = json.dumps(
                {"dataframe_split": {"columns": split["columns"], "data": split["data"][:1]}}
            ).encode()
            ports = {
                "bare mlflow models serve": bare_port,
                "runway serve (gateway + 1 backend)": runway_port,
            }
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
            print(
                f"load check: {args.concurrency} clients x {args.load_seconds:g} s on runway ...",
                flush=True,
            )
            load_n, load_bad, load_lat = _concurrent(
                runway_port, body, args.concurrency, args.load_seconds
            )
        finally:
            _stop(ours)
            _stop(bare)
        print("threads: HistGradientBoosting, pinned vs unpinned backends, cores busy ...")
        threads = _threads(root, env, body, args.threads_requests)

    print()
    print("| endpoint | p50 ms | p99 ms | req/s @ c=8 | p99 ms @ c=8 | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, lat, rps, p99c, bad in rows:
        p50, p99 = statistics.median(lat) * 1000, _pct(lat, 0.99)
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {rps:.0f} | {p99c:.1f} | {bad} |")
    bare_p50 = statistics.median(rows[0][1]) * 1000
    ours_p50 = statistics.median(rows[1][1]) * 1000
    cost = ours_p50 - bare_p50
    verdict = "ok" if cost <= 1.5 else "FAIL"
    print()
    print(
        f"runway's cost at p50: {cost:+.2f} ms (target <= 1.5 ms): {verdict}; "
        f"p50 ratio {ours_p50 / bare_p50:.3f}; throughput ratio {rows[1][2] / rows[0][2]:.2f}"
    )
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

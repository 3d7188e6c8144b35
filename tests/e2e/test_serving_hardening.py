"""`runway serve` in its DEFAULT configuration against hostile clients and a crashing backend.

One deployment for the module (a churn model, runway serve with no serving
settings at all: two backends, the default limits), on real HTTP with real
MLflow scoring servers:

* backends are reachable only through the gateway (owner-only Unix sockets,
  no TCP listener);
* slow senders (bodies trickled in, heads never finished, idle sockets) do
  not hold back normal clients;
* 10,000 generated payloads get no 5xx and leave the server healthy;
* a backend killed with SIGKILL under load costs at most its requests in
  flight (last: it disturbs the deployment).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from prometheus_client.parser import text_string_to_metric_families

from runway.store.served import BACKEND_APP
from tests.conftest import REPO, REPO_PYTHONPATH
from tests.e2e import payloads
from tests.helpers import free_port, ship, stop_process_group, wait_http

# A backend's command line names the app it serves (its zygote's, forked).
BACKEND = BACKEND_APP.split(":")[0].encode()

pytestmark = pytest.mark.slow

MODEL = "churn-hard"
# make test sends 2,500 generated payloads; make bench the full 10,000 (same test).
FUZZ_PAYLOADS = int(os.environ.get("RUNWAY_FUZZ_PAYLOADS", "2500"))


@dataclass
class Endpoint:
    root: Path
    url: str
    port: int
    proc: subprocess.Popen
    log: Path
    good: bytes  # a valid one-row request
    prediction: list

    def post(self, body: bytes, **kw) -> requests.Response:
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        return requests.post(f"{self.url}/invocations", data=body, headers=headers, timeout=60)

    def metrics(self) -> dict[str, float]:
        """Every sample as Prometheus parses the page: ``name{label="value",...}`` (labels
        in name order) -> value."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hardening")
    data = root / "churn.csv"
    frame = pd.read_csv(REPO / "data" / "churn.csv")
    frame.to_csv(data, index=False)
    spec = {
        "experiment": "hardening",
        "task": "classification",
        "model_name": MODEL,
        "data": {
            "source": str(data),
            "target": "churned",
            "features": {c: "numeric" for c in payloads.NUMERIC}
            | dict.fromkeys(payloads.CATEGORICAL, "categorical"),
        },
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 300}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 5},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    ship(root, spec, reviewer="alice")
    env = {  # the store, and nothing about serving: the defaults are under test
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "PYTHONPATH": REPO_PYTHONPATH,
    }
    port = free_port()
    log = root / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runway", "serve", MODEL, "--port", str(port)],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    row = json.loads(frame[payloads.COLUMNS].head(1).to_json(orient="records"))
    good = json.dumps({"dataframe_records": row}).encode()
    try:
        wait_http(f"{url}/ready", proc, timeout=240)
        first = requests.post(
            f"{url}/invocations", data=good, headers={"Content-Type": "application/json"}
        )
        assert first.status_code == 200, first.text
        yield Endpoint(root, url, port, proc, log, good, first.json()["predictions"])
    finally:
        backends = _scoring_servers(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        finally:
            stop_process_group(proc)
        assert code == 0, log.read_text()[-3000:]
        assert not set(backends) & set(_all_pids()), "a backend outlived the gateway"


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _scoring_servers(gateway: int) -> list[int]:
    """The MLflow scoring-server processes below the gateway (at any depth)."""
    parents: dict[int, int] = {}
    commands: dict[int, bytes] = {}
    for pid in _all_pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            commands[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
    below, frontier = set(), [gateway]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        below.update(children)
        frontier += children
    return sorted(p for p in below if BACKEND in commands.get(p, b""))


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _listening(table: str) -> set[str]:
    """Inodes of listening sockets in /proc/net/<table> (tcp, tcp6: state 0A; unix: 01)."""
    path = Path(f"/proc/net/{table}")
    if not path.exists():
        return set()
    lines = path.read_text().splitlines()[1:]
    if table == "unix":
        return {p[6] for line in lines if len(p := line.split()) >= 7 and p[5] == "01"}
    return {p[9] for line in lines if len(p := line.split()) >= 10 and p[3] == "0A"}


def _unix_paths(inodes: set[str]) -> list[Path]:
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8 and parts[6] in inodes:
            paths.append(Path(parts[7]))
    return paths


def test_backends_are_reachable_only_through_the_gateway(endpoint):
    """No backend listens on TCP; each listens on a 0600 Unix socket in a 0700 directory."""
    backends = _scoring_servers(endpoint.proc.pid)
    assert backends
    tcp = _listening("tcp") | _listening("tcp6")
    for pid in backends:
        mine = _socket_inodes(pid)
        assert not mine & tcp, f"backend {pid} listens on a TCP port"
        [path] = _unix_paths(mine & _listening("unix"))
        assert path.stat().st_mode & 0o777 == 0o600, oct(path.stat().st_mode)
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert path.parent.stat().st_uid == os.getuid()
        # Its owner (the gateway's user) gets an answer; the socket is MLflow's server.
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
            client.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(100).startswith(b"HTTP/1.1 200")
        if os.getuid() == 0:  # another user cannot even reach it
            probe = subprocess.run(
                [sys.executable, "-c", _CONNECT_AS_NOBODY, str(path)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert probe.stdout.strip() == "PermissionError", probe.stdout + probe.stderr


_CONNECT_AS_NOBODY = """
import os, socket, sys
os.setgid(65534); os.setuid(65534)
try:
    socket.socket(socket.AF_UNIX).connect(sys.argv[1])
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


def _slow_client(endpoint: Endpoint, source: str, kind: str, outcomes: list[str]) -> None:
    """A client from ``source`` that sends part of a request and waits to see what happens."""
    try:
        sock = socket.create_connection(("127.0.0.1", endpoint.port), source_address=(source, 0))
    except OSError as exc:
        outcomes.append(f"refused {type(exc).__name__}")
        return
    sock.settimeout(60)
    try:
        if kind == "body":  # the head and 10 of 1,000 body bytes
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n0123456789"
            )
        elif kind == "head":  # half a request head
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        reply = sock.recv(200)
        outcomes.append(reply.split(b"\r\n")[0].decode() if reply else "closed")
    except OSError as exc:
        outcomes.append(f"closed {type(exc).__name__}")
    finally:
        sock.close()


def test_slow_senders_do_not_hold_back_normal_clients(endpoint):
    """64 trickled bodies, 64 unfinished heads and 100 idle sockets, each group from its own
    address, while 4 normal clients score: every normal request is answered 200."""
    outcomes: dict[str, list[str]] = {"body": [], "head": [], "idle": []}
    attackers = [
        threading.Thread(target=_slow_client, args=(endpoint, source, kind, outcomes[kind]))
        for source, kind, n in (("127.0.0.2", "body", 64), ("127.0.0.3", "head", 64), ("127.0.0.4", "idle", 100))
        for _ in range(n)
    ]  # fmt: skip
    for thread in attackers:
        thread.start()
    time.sleep(2)  # every attacker is connected (or turned away) and holding on
    statuses: list[int] = []
    stop = time.monotonic() + 8

    def normal() -> None:
        with requests.Session() as session:
            while time.monotonic() < stop:
                response = session.post(
                    f"{endpoint.url}/invocations",
                    data=endpoint.good,
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                )
                statuses.append(response.status_code)

    clients = [threading.Thread(target=normal) for _ in range(4)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    for thread in attackers:
        thread.join(90)

    assert statuses and set(statuses) == {200}, Counter(statuses)
    assert Counter(outcomes["body"]) == {"HTTP/1.1 408 Request Timeout": 64}
    assert set(outcomes["head"]) <= {"closed", "closed ConnectionResetError"}, outcomes["head"]
    assert len(outcomes["head"]) == 64
    assert len(outcomes["idle"]) == 100
    dropped = endpoint.metrics()
    assert dropped['runway_connections_dropped_total{reason="connections_per_client"}'] >= 36
    assert dropped['runway_connections_dropped_total{reason="head_timeout"}'] >= 64


def test_an_oversized_request_head_is_refused_with_431(endpoint):
    """uvicorn with httptools would read a 10 MB header line; the gateway stops at 64 KB."""
    with socket.create_connection(("127.0.0.1", endpoint.port)) as sock:
        sock.settimeout(60)
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        )
        reply = sock.recv(500)
    assert reply.startswith(b"HTTP/1.1 431 "), reply
    assert b"HEADERS_TOO_LARGE" in reply
    assert requests.get(f"{endpoint.url}/health", timeout=10).status_code == 200


def _send(conn: http.client.HTTPConnection, headers, body: bytes) -> int:
    conn.putrequest("POST", "/invocations", skip_host=True, skip_accept_encoding=True)
    for name, value in [*headers, ("Content-Length", str(len(body)))]:
        conn.putheader(name, value)
    conn.endheaders(body)
    response = conn.getresponse()
    response.read()
    if response.getheader("connection", "").lower() == "close":
        conn.close()
    return response.status


def test_generated_payloads_get_no_server_error(endpoint):
    """Property: whatever a client sends, the answer is not a 5xx, and the server stays healthy."""
    statuses: Counter[int] = Counter()
    server_errors: list[tuple[int, list, bytes]] = []
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=120)
    host = f"127.0.0.1:{endpoint.port}"

    @settings(
        max_examples=FUZZ_PAYLOADS,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(payloads.requests_(host))
    def answer_is_not_a_server_error(request: payloads.Request) -> None:
        nonlocal conn
        headers, body = request
        try:
            status = _send(conn, headers, body)
        except (http.client.HTTPException, OSError):  # the server closed the connection
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=120)
            status = _send(conn, headers, body)
        statuses[status] += 1
        if status >= 500:
            server_errors.append((status, headers, body[:300]))
        assert status < 500, (status, headers, body[:300])

    answer_is_not_a_server_error()

    print(f"fuzz: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= FUZZ_PAYLOADS
    assert server_errors == []
    # The payloads reached everywhere: the model (200), the parsers (400), the media-type
    # check (415) and the contract (422).
    assert {200, 400, 415, 422} <= set(statuses) and statuses[200] >= FUZZ_PAYLOADS // 20
    # Healthy after: ready with both backends, scoring as before, no 5xx counted, no restart.
    ready = requests.get(f"{endpoint.url}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["backends"] == 2
    assert endpoint.post(endpoint.good).json()["predictions"] == endpoint.prediction
    metrics = endpoint.metrics()
    for code in (500, 502, 503, 504):
        assert metrics[f'runway_requests_total{{code="{code}",path="/invocations"}}'] == 0
    assert metrics["runway_backend_restarts_total"] == 0


def test_a_backend_killed_mid_load_costs_at_most_its_requests_in_flight(endpoint):
    """Default configuration, 4 clients scoring back to back, one backend SIGKILLed: at most
    4 requests (one per client, the most that can be in flight) fail; the rest are answered."""
    results: list[int] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    status = session.post(
                        f"{endpoint.url}/invocations",
                        data=endpoint.good,
                        headers={"Content-Type": "application/json"},
                        timeout=60,
                    ).status_code
                except requests.RequestException:
                    status = -1
                results.append(status)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    victim = _scoring_servers(endpoint.proc.pid)[0]  # of two, by default
    os.kill(victim, signal.SIGKILL)
    killed_at = len(results)
    time.sleep(10)
    stop.set()
    for thread in threads:
        thread.join(60)

    failed = [s for s in results if s != 200]
    print(f"kill -9 of one of 2 backends: {len(results)} requests, {Counter(failed)} failed")
    assert killed_at > 20 and len(results) - killed_at > 20  # load before and after the kill
    assert len(failed) <= 4, Counter(results)
    # The victim is replaced, and the endpoint has its two backends again.
    deadline = time.monotonic() + 180
    while endpoint.metrics()["runway_backend_restarts_total"] < 1:
        assert time.monotonic() < deadline, endpoint.log.read_text()[-2000:]
        time.sleep(1)
    assert victim not in _scoring_servers(endpoint.proc.pid)
    assert len(_scoring_servers(endpoint.proc.pid)) == 2
    assert f"(pid {victim}) exited with -9; starting a replacement" in endpoint.log.read_text()

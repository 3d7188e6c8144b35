"""The gateway's prediction cache in front of real (toy) backend processes of two versions.

Each toy backend answers ``x * factor`` (2 for v7, 3 for v8) and writes how many
rows it has scored to a file, so the test sees which rows reached a backend.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from runway.core.columns.contract import infer_contract
from runway.core.columns.input_policy import InputPolicy
from runway.serving.backends import Backend
from runway.serving.gateway import Gateway, Slot
from runway.settings import Settings
from runway.store.served import ResolvedModel
from tests.helpers import BACKEND_ROWS, free_port, stop_process_group

pytestmark = pytest.mark.slow

COUNTING_BACKEND = (
    BACKEND_ROWS
    + """
import json, socketserver, sys
from http.server import BaseHTTPRequestHandler
scored = 0

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_POST(self):
        global scored
        body = self.rfile.read(int(self.headers["Content-Length"]))
        rows = checked_rows(body, self.headers["Content-Type"])
        scored += len(rows)
        open(sys.argv[3], "w").write(str(scored))
        data = json.dumps({"predictions": [r["x"] * float(sys.argv[2]) for r in rows]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

Server(sys.argv[1], Handler).serve_forever()
"""
)


class Toy:
    def __init__(self, url: str, gateway: Gateway, slots: dict[str, Slot], counts: dict[str, Path]):
        self.url, self.gateway, self.slots, self.counts = url, gateway, slots, counts

    def scored(self, version: str) -> int:
        path = self.counts[version]
        return int(path.read_text()) if path.exists() else 0

    def post(self, xs: list[float]) -> requests.Response:
        body = json.dumps({"dataframe_records": [{"x": x, "mode": "fast"} for x in xs]})
        return requests.post(
            f"{self.url}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )

    def metric(self, name: str) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        [line] = [x for x in text.splitlines() if x.startswith(name + " ")]
        return float(line.split()[-1])


@pytest.fixture
def toy(tmp_path: Path):
    import uvicorn

    sockets = Path(tempfile.mkdtemp(prefix="runway-test-"))
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "mode": ["fast", "fast", "fast"]})
    contract = infer_contract(train, {"x": "numeric", "mode": "categorical"})
    processes, slots, counts = [], {}, {}
    for version, factor in (("7", "2"), ("8", "3")):
        path, counts[version] = sockets / f"v{version}.sock", tmp_path / f"v{version}.count"
        process = subprocess.Popen(
            [sys.executable, "-c", COUNTING_BACKEND, str(path), factor, str(counts[version])],
            start_new_session=True,
        )
        processes.append(process)
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        backend = Backend("toy", version, path, process, tmp_path / "backend.log")
        model = ResolvedModel("toy", version, "Production", None)
        slots[version] = Slot(model, contract, InputPolicy(), [backend], b"", 0)
    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'unused.db'}",
        prediction_log="off",
        serve_cache_entries=100,
    )
    gateway = Gateway(settings)
    gateway.switch(slots["7"])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(gateway, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield Toy(f"http://127.0.0.1:{port}", gateway, slots, counts)
    server.should_exit = True
    thread.join(10)
    for process in processes:
        stop_process_group(process)
    shutil.rmtree(sockets, ignore_errors=True)


def test_repeated_rows_are_answered_from_the_cache_and_counted(toy):
    assert toy.post([1.0, 2.0]).json() == {"predictions": [2.0, 4.0]}
    assert toy.scored("7") == 2
    assert toy.post([2, 1.0]).json() == {"predictions": [4.0, 2.0]}  # 2 and 2.0: one row
    assert toy.scored("7") == 2
    # half cached: only the new rows reach the backend, answers in the request's order
    assert toy.post([5.0, 1.0, 6.0]).json() == {"predictions": [10.0, 2.0, 12.0]}
    assert toy.scored("7") == 4
    assert toy.metric("runway_cache_hits_total") == 3
    assert toy.metric("runway_cache_misses_total") == 4
    assert toy.metric("runway_cache_entries") == 4
    assert toy.metric("runway_rows_scored_total") == 7


def test_a_switch_empties_it_and_two_versions_never_mix(toy):
    assert toy.post([1.0, 2.0]).json() == {"predictions": [2.0, 4.0]}
    toy.gateway.switch(toy.slots["8"])
    assert toy.metric("runway_cache_entries") == 0
    response = toy.post([1.0, 2.0])
    assert response.json() == {"predictions": [3.0, 6.0]}
    assert response.headers["X-Runway-Model-Version"] == "8" and toy.scored("8") == 2
    # even without the emptying, the version is in every key
    toy.gateway.slot = toy.slots["7"]
    assert toy.post([1.0, 2.0]).json() == {"predictions": [2.0, 4.0]}
    toy.gateway.slot = toy.slots["8"]
    assert toy.post([1.0, 2.0, 9.0]).json() == {"predictions": [3.0, 6.0, 27.0]}
    assert toy.scored("8") == 3 and toy.scored("7") == 4  # v7 rows went again after the switch

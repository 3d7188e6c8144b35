"""The gateway's limits against a real (deliberately slow) HTTP backend process.

The backend here is a tiny HTTP server that answers like `mlflow models serve`
and sleeps when a row asks it to, so the gateway's timeout and concurrency
limit can be seen at work without a model that takes seconds to predict.
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
from prometheus_client.parser import text_string_to_metric_families

from runway.core.columns.contract import infer_contract
from runway.core.columns.input_policy import InputPolicy
from runway.serving.backends import Backend
from runway.serving.gateway import Gateway, Slot
from runway.settings import Settings
from runway.store.served import ResolvedModel
from tests.helpers import BACKEND_ROWS, free_port, stop_process_group

pytestmark = pytest.mark.slow

SLOW_BACKEND = (
    BACKEND_ROWS
    + """
import json, socketserver, sys, time
from http.server import BaseHTTPRequestHandler

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._answer(200, {})
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        rows = checked_rows(body, self.headers["Content-Type"])
        if any(r["mode"] == "slow" for r in rows):
            time.sleep(float(sys.argv[2]))
        if any(r["mode"] == "crash" for r in rows):
            self._answer(500, {"error_code": "INTERNAL", "message": "boom\\nTraceback (most recent call last): ...",
                               "stack_trace": "Traceback (most recent call last): ..."})
            return
        self._answer(200, {"predictions": [r["x"] * 2 for r in rows]})

class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

Server(sys.argv[1], Handler).serve_forever()
"""
)


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory):
    import uvicorn

    root = tmp_path_factory.mktemp("gateway")
    sockets = Path(tempfile.mkdtemp(prefix="runway-test-"))  # short: a socket path has a limit
    backend_path, port = sockets / "toy.sock", free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_BACKEND, str(backend_path), "3"], start_new_session=True
    )
    deadline = time.monotonic() + 30
    while not backend_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "mode": ["fast", "slow", "crash"]})
    contract = infer_contract(train, {"x": "numeric", "mode": "categorical"})
    backend = Backend("toy", "7", backend_path, process, root / "backend.log")
    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'unused.db'}",
        serve_max_concurrency=1,
        serve_timeout=1.0,
        prediction_log="off",
    )
    gateway = Gateway(settings)
    gateway.slot = Slot(
        ResolvedModel("toy", "7", "Production", None), contract, InputPolicy(), [backend], b"", 0
    )
    server = uvicorn.Server(
        uvicorn.Config(gateway, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(10)
    stop_process_group(process)
    shutil.rmtree(sockets, ignore_errors=True)


def _post(url: str, mode: str, x: float = 1.5) -> requests.Response:
    body = json.dumps({"dataframe_records": [{"x": x, "mode": mode}]})
    return requests.post(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )


def test_a_fast_request_is_forwarded_with_the_version_header(gateway_url):
    response = _post(gateway_url, "fast", 2.5)
    assert response.status_code == 200
    assert response.json() == {"predictions": [5.0]}
    assert response.headers["X-Runway-Model"] == "toy"
    assert response.headers["X-Runway-Model-Version"] == "7"


def test_a_slow_request_times_out_with_504_and_frees_its_slot(gateway_url):
    started = time.monotonic()
    response = _post(gateway_url, "slow")
    assert response.status_code == 504
    assert "no answer within 1s" in response.json()["message"]
    assert (
        time.monotonic() - started < 2.9
    )  # answered at the timeout, not when the backend was done
    assert _post(gateway_url, "fast").status_code == 200  # the one slot was freed


def test_excess_load_is_shed_with_503_not_queued(gateway_url):
    slow: list[requests.Response] = []
    holder = threading.Thread(target=lambda: slow.append(_post(gateway_url, "slow")))
    holder.start()
    time.sleep(0.3)  # the slow request holds the only slot
    shed = _post(gateway_url, "fast")
    holder.join()
    assert shed.status_code == 503
    assert shed.headers["Retry-After"] == "1"
    assert "busy" in shed.json()["message"]
    assert slow[0].status_code == 504
    assert _post(gateway_url, "fast").status_code == 200


def test_a_model_failure_is_passed_on_without_the_stack_trace(gateway_url):
    response = _post(gateway_url, "crash")
    assert response.status_code == 502
    assert response.json() == {"error_code": "INTERNAL", "message": "model error: boom"}
    assert _post(gateway_url, "fast").status_code == 200


def test_metrics_page_is_prometheus_text(gateway_url):
    text = requests.get(f"{gateway_url}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["runway_request_duration_seconds"].type == "histogram"
    [timeouts] = [s for s in families["runway_requests"].samples if s.labels["code"] == "504"]
    assert timeouts.labels["path"] == "/invocations" and timeouts.value >= 1
    [info] = families["runway_model_info"].samples
    assert info.labels == {"model": "toy", "version": "7"} and info.value == 1

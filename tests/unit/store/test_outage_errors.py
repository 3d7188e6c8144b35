"""A tracking server whose database or object store is down, told apart from a missing artifact.

A fake server in a thread answers as ``mlflow server`` does: 503 for every call
while its database is down (issue 27, item 8), 500 from the artifact proxy while
its S3 is down, 404 for an artifact that is not there (item 9).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runway.cli import main
from runway.errors import TrackingError
from runway.settings import get_settings
from runway.store import tracking
from runway.store.http import explain

RUN = "0123456789abcdef0123456789abcdef"


class _Fake(BaseHTTPRequestHandler):
    mode = "ok"  # "db-down", "s3-down", "missing"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict | str) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.mode == "db-down":
            return self._answer(503, "Service Unavailable")
        if "/mlflow/runs/get" in self.path:
            info = {
                "run_id": RUN,
                "experiment_id": "1",
                "status": "FINISHED",
                "artifact_uri": f"mlflow-artifacts:/1/{RUN}/artifacts",
                "lifecycle_stage": "active",
            }
            return self._answer(200, {"run": {"info": info, "data": {}}})
        if "/mlflow-artifacts/artifacts" in self.path:
            if self.mode == "s3-down":
                return self._answer(500, "Internal Server Error")
            if "?" in self.path:  # a listing: nothing there
                return self._answer(200, {})
            return self._answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no"})
        return self._answer(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.mode == "db-down":
            return self._answer(503, "Service Unavailable")
        return self._answer(200, {"models": []})  # logged-models/search: none


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Fake]]:
    handler = type("Handler", (_Fake,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uri = f"http://user:s3cret@127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("RUNWAY_HTTP_RETRIES", "0")
    monkeypatch.setenv("RUNWAY_HTTP_BACKOFF", "0")
    tracking.configure(get_settings())
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_whose_database_is_down_is_a_tracking_error_naming_the_503(fake):
    fake.mode = "db-down"
    with pytest.raises(Exception) as caught:
        tracking.client().get_run(RUN)
    problem = explain(caught.value)
    assert isinstance(problem, TrackingError)
    assert "HTTP 503" in str(problem) and "database" in str(problem)
    assert "s3cret" not in str(problem)


def test_registry_status_with_the_database_down_is_one_line_and_exit_4(fake, capsys):
    fake.mode = "db-down"
    assert main(["registry", "status"]) == 4
    err = capsys.readouterr().err
    [line] = err.splitlines()
    assert line.startswith("error: the tracking server") and "HTTP 503" in line


def test_a_contract_behind_a_failing_object_store_is_unreachable_not_missing(fake):
    fake.mode = "s3-down"
    with pytest.raises(TrackingError) as caught:
        tracking.load_contract(RUN)
    message = str(caught.value)
    assert message.startswith("artifact store unreachable"), message
    assert "HTTP 500" in message and "contract/contract.json" in message
    assert "has no" not in message and "s3cret" not in message


def test_a_contract_that_is_not_there_is_still_missing(fake):
    fake.mode = "missing"
    with pytest.raises(TrackingError) as caught:
        tracking.load_contract(RUN)
    assert "has no contract/contract.json" in str(caught.value)
    assert "unreachable" not in str(caught.value)


def test_an_s3_endpoint_the_client_cannot_reach_is_named_without_credentials():
    from botocore.exceptions import EndpointConnectionError

    from runway.store.http import artifact_store_unreachable

    exc = EndpointConnectionError(endpoint_url="http://key:secret@127.0.0.1:9/bucket/x.json")
    problem = artifact_store_unreachable(exc, "run r's contract/contract.json")
    assert problem is not None
    assert "artifact store unreachable" in str(problem) and "127.0.0.1:9" in str(problem)
    assert "secret" not in str(problem)

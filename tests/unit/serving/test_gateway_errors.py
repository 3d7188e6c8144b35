"""The gateway's last line of defence: an unexpected error is a clean, counted 500.

The ASGI app is called directly (no server, no backend): the slot it serves is
deliberately broken, so the request fails inside the gateway itself, the way a
bug would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from runway.core.columns.input_policy import InputPolicy
from runway.serving.gateway import Gateway, Slot
from runway.serving.payload import BadRequest
from runway.settings import Settings
from runway.store.served import ResolvedModel
from tests.unit.serving.asgi import call


def _call(gateway: Gateway, path: str, body: bytes = b"", headers=None) -> tuple[int, dict, bytes]:
    method = "POST" if path == "/invocations" else "GET"
    default = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    return call(gateway, method, path, headers or default, body)


def _requests(gateway: Gateway) -> dict[tuple[str, str], float]:
    """``runway_requests_total`` by (path, code), as Prometheus parses the page."""
    text = _call(gateway, "/metrics")[2].decode()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "runway_requests"]
    return {(s.labels["path"], s.labels["code"]): s.value for s in family.samples}


def _gateway(tmp_path: Path) -> Gateway:
    gateway = Gateway(Settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'x.db'}"))
    broken_contract: Any = {}  # not a DataContract: checking a request fails inside the gateway
    gateway.slot = Slot(
        ResolvedModel("m", "3", "Production", None), broken_contract, InputPolicy(), [], b"", 0
    )
    return gateway


def test_an_unexpected_error_is_a_clean_500_counted_in_metrics(tmp_path, caplog):
    gateway = _gateway(tmp_path)
    status, headers, body = _call(gateway, "/invocations", b'{"dataframe_records": [{"x": 1}]}')
    assert status == 500
    assert json.loads(body) == {
        "error_code": "INTERNAL_ERROR",
        "message": "internal error (logged)",
    }
    assert headers[b"connection"] == b"close"
    assert "Traceback" in caplog.text and "AttributeError" in caplog.text  # logged for the operator
    assert _requests(gateway)[("/invocations", "500")] == 1


def test_server_error_series_exist_before_the_first_error(tmp_path):
    counted = _requests(_gateway(tmp_path))
    for code in ("500", "502", "503", "504"):
        assert counted[("/invocations", code)] == 0


def test_error_bodies_are_bounded_whatever_the_request_held():
    huge = "v" * 4_000_000
    error = BadRequest(
        422,
        f"column 'x': got text {huge!r}",
        errors=[{"row": i, "message": huge} for i in range(500)],
    )
    body = json.dumps(error.body())
    assert len(body) < 20_000
    assert len(error.body()["errors"]) == 20

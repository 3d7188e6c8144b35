"""#30-7: every path answers only its methods (405 with Allow), and no encoded body is misread.

The ASGI app is called directly, as a server would call it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runway.serving.gateway import Gateway
from runway.settings import Settings
from tests.unit.serving.asgi import call


def _call(gateway: Gateway, method: str, path: str, headers=(), body=b""):
    return call(gateway, method, path, [(b"host", b"127.0.0.1"), *headers], body)


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    return Gateway(Settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'x.db'}"))


@pytest.mark.parametrize("path", ["/health", "/ping", "/ready", "/metrics"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "TRACE", "PATCH", "OPTIONS"])
def test_a_probe_path_answers_get_and_head_only(gateway, path, method):
    status, headers, body = _call(gateway, method, path)
    assert status == 405, (method, path)
    assert headers[b"allow"] == b"GET, HEAD"
    assert json.loads(body)["error_code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_and_head_still_reach_the_probes(gateway, method):
    assert _call(gateway, method, "/health")[0] == 200
    assert _call(gateway, method, "/ready")[0] == 503  # nothing loaded yet: not ready


def test_invocations_answers_post_only(gateway):
    status, headers, _ = _call(gateway, "GET", "/invocations")
    assert status == 405 and headers[b"allow"] == b"POST"


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "gzip, identity"])
def test_an_encoded_body_is_refused_with_415_naming_the_encoding(gateway, encoding):
    headers = [(b"content-type", b"application/json"), (b"content-encoding", encoding.encode())]
    status, _, body = _call(gateway, "POST", "/invocations", headers, b'{"inputs": {}}')
    assert status == 415
    assert encoding.split(",")[0] in json.loads(body)["message"]


def test_identity_encoding_is_the_plain_body(gateway):
    headers = [(b"content-type", b"application/json"), (b"content-encoding", b"identity")]
    status, _, body = _call(gateway, "POST", "/invocations", headers, b'{"inputs": {}}')
    assert status == 503 and json.loads(body)["error_code"] == "NOT_READY"  # past the checks
